//! Content-addressed attachment files: `blobs/ab/cdef…` named by SHA-256.
//! A file is written to a temporary name and renamed into place, and made
//! durable before the transaction that references it commits, so a
//! committed row never points at a missing or partial file. Identical
//! content is stored once.
//!
//! Durability comes in two forms. [`Blobs::put`] on a plain handle fsyncs
//! the file and its directory at once. A [`Blobs::deferred`] handle skips
//! those (two fsyncs per file cost more than the rest of a message) and the
//! caller makes a whole batch durable with one [`Blobs::sync`] (`syncfs`)
//! before it commits. Because a crash can then leave a renamed but short
//! file behind, an existing file is only trusted when its size matches.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
    /// Set on deferred handles: whether a put awaits [`Blobs::sync`].
    unsynced: Option<Arc<AtomicBool>>,
}

impl Blobs {
    pub fn new(root: impl Into<PathBuf>) -> Blobs {
        Blobs { root: root.into(), unsynced: None }
    }

    /// A handle on the same files whose puts are made durable by [`Blobs::sync`].
    pub fn deferred(&self) -> Blobs {
        Blobs { root: self.root.clone(), unsynced: Some(Arc::new(AtomicBool::new(false))) }
    }

    fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        (sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.root.join(&sha256[..2]).join(&sha256[2..]))
    }

    /// Stores `bytes`; returns the hex SHA-256 that names them.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = crate::parse::sha256_hex(bytes);
        let path = self.path_of(&sha).expect("a hex digest names a path");
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(sha);
        }
        let dir = path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.{}.tmp", &sha[2..], std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        match &self.unsynced {
            None => {
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(dir)?.sync_all()?;
            }
            Some(flag) => {
                std::fs::rename(&tmp, &path)?;
                flag.store(true, Ordering::Release);
            }
        }
        Ok(sha)
    }

    /// Makes every put of this deferred handle durable: one `syncfs` of the
    /// blob filesystem. Nothing to do on a plain handle.
    pub fn sync(&self) -> std::io::Result<()> {
        if let Some(flag) = &self.unsynced
            && flag.swap(false, Ordering::AcqRel)
        {
            rustix::fs::syncfs(std::fs::File::open(&self.root)?)?;
        }
        Ok(())
    }

    /// Opens a stored file for reading.
    pub fn open(&self, sha256: &str) -> std::io::Result<std::fs::File> {
        let path = self.path_of(sha256).ok_or_else(|| std::io::Error::other("not a blob name"))?;
        std::fs::File::open(path)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Copies every stored file into `dest` (same layout), durably, skipping
    /// those already there whole: files never change once written, so a
    /// repeated backup into the same folder only copies what is new. Returns
    /// (copied, already there).
    pub fn copy_to(&self, dest: &Path) -> std::io::Result<(usize, usize)> {
        let (mut copied, mut present) = (0, 0);
        let dirs = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(e),
        };
        for dir in dirs {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            let into = dest.join(dir.file_name());
            std::fs::create_dir_all(&into)?;
            for file in std::fs::read_dir(dir.path())? {
                let file = file?;
                // Temporary files of a put under way start with a dot.
                if file.file_name().to_string_lossy().starts_with('.') || !file.file_type()?.is_file() {
                    continue;
                }
                let target = into.join(file.file_name());
                let len = file.metadata()?.len();
                if std::fs::metadata(&target).is_ok_and(|m| m.len() == len) {
                    present += 1;
                    continue;
                }
                let mut from = std::fs::File::open(file.path())?;
                crate::durable::write_with(&target, |to| std::io::copy(&mut from, to).map(drop))?;
                copied += 1;
            }
        }
        Ok((copied, present))
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

    #[test]
    fn a_copy_holds_every_file_and_a_second_copy_only_what_is_new() {
        let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let b = Blobs::new(src.path());
        let first = b.put(b"first").unwrap();
        assert_eq!(b.copy_to(dest.path()).unwrap(), (1, 0));
        let second = b.put(b"second").unwrap();
        assert_eq!(b.copy_to(dest.path()).unwrap(), (1, 1));
        let copy = Blobs::new(dest.path());
        for (sha, content) in [(first, &b"first"[..]), (second, &b"second"[..])] {
            let mut read = Vec::new();
            std::io::Read::read_to_end(&mut copy.open(&sha).unwrap(), &mut read).unwrap();
            assert_eq!(read, content);
        }
        assert_eq!(walk(dest.path()), 2, "no temporary file is left behind");
    }

    #[test]
    fn a_short_file_left_by_a_crash_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let b = Blobs::new(dir.path()).deferred();
        let sha = b.put(b"complete content").unwrap();
        b.sync().unwrap();
        let path = dir.path().join(&sha[..2]).join(&sha[2..]);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(b.put(b"complete content").unwrap(), sha);
        assert_eq!(std::fs::read(&path).unwrap(), b"complete content");
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
