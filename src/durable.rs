//! Writing a file so that a crash leaves either the old file or the whole
//! new one, never a part: write to a temporary name beside it, fsync, rename
//! into place, fsync the folder (the rename is only durable then).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Writes `path` through `write`, durably.
pub fn write_with(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let tmp = temp_beside(path);
    let result = File::create(&tmp).and_then(|mut f| write(&mut f)).and_then(|()| commit(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path`, durably.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |f| io::Write::write_all(f, bytes))
}

/// A temporary name in `path`'s folder, hidden and unique to this process.
pub fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Makes the finished file `tmp` durable under the name `path`.
pub fn commit(tmp: &Path, path: &Path) -> io::Result<()> {
    File::open(tmp)?.sync_all()?;
    std::fs::rename(tmp, path)?;
    sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Makes the entries of `dir` (new names, renames) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let failed = write_with(&path, |_| Err(io::Error::other("stop")));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"two", "a failed write keeps the old file");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
