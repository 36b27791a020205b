//! Small, careful file writes for secrets: private (0600) and atomic, so a reader in
//! another process (`tandem token` while `tandem up` runs) never sees half a file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::IssuerError;

/// Creates `dir` (0700 on Unix) if it does not exist.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), IssuerError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| IssuerError::io("create directory", dir, e))
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()))
}

fn write_temp(path: &Path, contents: &[u8]) -> Result<PathBuf, IssuerError> {
    let tmp = temp_beside(path);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = options.open(&tmp).and_then(|mut f: File| {
        f.write_all(contents)?;
        f.sync_all()
    });
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(IssuerError::io("write", &tmp, e));
    }
    Ok(tmp)
}

/// Writes `contents` to `path` only if `path` does not exist yet. Returns false when
/// another writer got there first (the caller then reads theirs), so two processes
/// starting at once agree on one file.
pub(crate) fn create_private_once(path: &Path, contents: &[u8]) -> Result<bool, IssuerError> {
    let tmp = write_temp(path, contents)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(IssuerError::io("create", path, e)),
    }
}

/// Replaces `path` with `contents` atomically (0600).
pub(crate) fn replace_private(path: &Path, contents: &[u8]) -> Result<(), IssuerError> {
    let tmp = write_temp(path, contents)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        IssuerError::io("replace", path, e)
    })
}

/// Reads `path`, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, IssuerError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IssuerError::io("read", path, e)),
    }
}

/// A cross-process lock on a file (`<path>.lock`, created exclusively), so registry
/// read-modify-write cycles from two processes do not lose each other's updates. A lock
/// older than [`STALE_AFTER`] is assumed abandoned by a crashed process.
pub(crate) struct FileLock {
    path: PathBuf,
}

const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

impl FileLock {
    pub(crate) fn acquire(target: &Path) -> Result<Self, IssuerError> {
        let path = target.with_extension("lock");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age > STALE_AFTER);
                    if stale {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(IssuerError::io(
                            "lock",
                            &path,
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "another process holds the lock; remove the file if no tandem process is running",
                            ),
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(IssuerError::io("lock", &path, e)),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_once_keeps_the_first_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        assert!(create_private_once(&p, b"one").unwrap());
        assert!(!create_private_once(&p, b"two").unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"one");
        replace_private(&p, b"three").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        // no temp files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn lock_is_exclusive_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clients.json");
        let lock = FileLock::acquire(&p).unwrap();
        assert!(p.with_extension("lock").exists());
        drop(lock);
        assert!(!p.with_extension("lock").exists());
        let _again = FileLock::acquire(&p).unwrap();
    }
}
