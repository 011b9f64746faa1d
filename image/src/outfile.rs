//! Writing a user's output file (`save -o FILE`) so that it appears whole or not at all, and so
//! that an interrupted write leaves nothing behind for good: the bytes go to a hidden temp file
//! beside FILE (`.FILE.XXXXXX.hoist-tmp`, same filesystem, so the final rename is atomic), locked
//! (`flock`) while its writer lives. Every later write to that directory removes such temp files
//! that no live writer holds: what a killed `hoist save` left.
//!
//! This is hoist's one atomic writer: `save -o`, `build --output` files, OCI layouts' `index.json`
//! and blobs, and (through [`write_atomic_via`]) the store's own small files.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::{Error, IoContext, Result};

/// The temp files' name suffix; their names also start with `.`.
const SUFFIX: &str = ".hoist-tmp";

/// Writes `bytes` to `path` atomically (see the module docs); the file is owner-only (0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_atomically(path, |mut w| {
        w.write_all(bytes)
            .ctx(|| format!("writing {}", path.display()))?;
        Ok((w, ()))
    })
}

/// Writes `bytes` to `path` through a temp file in `tmp_dir` (which must be on `path`'s
/// filesystem and is kept clean by its owner, as the store's `tmp/` is): fsync, rename.
pub fn write_atomic_via(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir).ctx(|| "creating temp file")?;
    tmp.write_all(bytes)
        .ctx(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .ctx(|| format!("fsync {}", path.display()))?;
    tmp.persist(path).map_err(|e| Error::Io {
        context: format!("renaming into {}", path.display()),
        error: e.error,
    })?;
    Ok(())
}

/// Writes `path` with `write`, atomically (see the module docs); the file is owner-only (0600),
/// as Docker's `save -o` makes it.
pub fn write_file_atomically<T>(
    path: &Path,
    write: impl FnOnce(BufWriter<File>) -> Result<(BufWriter<File>, T)>,
) -> Result<T> {
    write_file_atomically_with_mode(path, None, write)
}

/// [`write_file_atomically`], the file getting permission bits `mode` when given.
pub fn write_file_atomically_with_mode<T>(
    path: &Path,
    mode: Option<u32>,
    write: impl FnOnce(BufWriter<File>) -> Result<(BufWriter<File>, T)>,
) -> Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let base = path
        .file_name()
        .ok_or_else(|| Error::Other(format!("{}: not a file name", path.display())))?
        .to_string_lossy()
        .into_owned();
    sweep_stale(dir);
    let tmp = locked_temp(dir, &base)?;
    let file = tmp
        .reopen()
        .ctx(|| format!("opening {}", tmp.path().display()))?;
    let (w, out) = write(BufWriter::with_capacity(1 << 20, file))?;
    let file = w.into_inner().map_err(|e| Error::Io {
        context: format!("writing {}", path.display()),
        error: e.into_error(),
    })?;
    if let Some(mode) = mode {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .ctx(|| format!("writing {}", path.display()))?;
    }
    file.sync_all()
        .ctx(|| format!("writing {}", path.display()))?;
    tmp.persist(path).map_err(|e| Error::Io {
        context: format!("writing {}", path.display()),
        error: e.error,
    })?;
    Ok(out)
}

/// A new temp file in `dir`, locked by this process. A sweeper that removed it between its creation
/// and the lock (it looked abandoned) is noticed, and another is made.
fn locked_temp(dir: &Path, base: &str) -> Result<tempfile::NamedTempFile> {
    loop {
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{base}."))
            .suffix(SUFFIX)
            .tempfile_in(dir)
            .ctx(|| format!("creating a temp file in {}", dir.display()))?;
        flock(tmp.as_file(), FlockOperation::LockExclusive)
            .ctx(|| format!("locking {}", tmp.path().display()))?;
        let held = tmp.as_file().metadata().ctx(|| "stat temp file")?;
        if fs::symlink_metadata(tmp.path())
            .is_ok_and(|m| m.ino() == held.ino() && m.dev() == held.dev())
        {
            return Ok(tmp);
        }
    }
}

/// Removes the temp files in `dir` no live writer holds. Best effort: errors are ignored.
fn sweep_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with('.') && name.ends_with(SUFFIX);
        if !ours || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let p = e.path();
        let Ok(f) = File::open(&p) else { continue };
        if flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok() {
            // Still the file we locked (not replaced meanwhile): its writer is gone.
            if let (Ok(a), Ok(b)) = (f.metadata(), fs::symlink_metadata(&p))
                && a.ino() == b.ino()
                && a.dev() == b.dev()
            {
                let _ = fs::remove_file(&p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn modes_and_byte_writes() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.json");
        write_atomic(&a, b"{}").unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"{}");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = t.path().join("b.tar");
        write_file_atomically_with_mode(&b, Some(0o644), |mut w| {
            w.write_all(b"tar").unwrap();
            Ok((w, ()))
        })
        .unwrap();
        assert_eq!(
            fs::metadata(&b).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let tmp = t.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        write_atomic_via(&tmp, &a, b"[]").unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"[]");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "temp file left");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 3);
    }

    #[test]
    fn writes_whole_and_sweeps_only_abandoned_temp_files() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out.tar");
        let abandoned = t.path().join(".out.tar.abcdef.hoist-tmp");
        fs::write(&abandoned, b"partial").unwrap();
        let live = t.path().join(".other.tar.ghijkl.hoist-tmp");
        let held = File::create(&live).unwrap();
        flock(&held, FlockOperation::LockExclusive).unwrap();
        let mine = t.path().join("mine.hoist-tmp");
        fs::write(&mine, b"a user's file").unwrap();
        write_file_atomically(&out, |mut w| {
            w.write_all(b"whole").unwrap();
            Ok((w, ()))
        })
        .unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"whole");
        assert!(!abandoned.exists(), "abandoned temp file kept");
        assert!(live.exists(), "a live writer's temp file removed");
        assert!(
            mine.exists(),
            "a file not named as hoist's temp files removed"
        );
        let err = write_file_atomically(&out, |_| -> Result<(BufWriter<File>, ())> {
            Err(Error::Other("failed".into()))
        });
        assert!(err.is_err());
        assert_eq!(
            fs::read(&out).unwrap(),
            b"whole",
            "a failed write replaced the file"
        );
        let left: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left.len(),
            3,
            "temp file of the failed write left: {left:?}"
        );
    }
}
