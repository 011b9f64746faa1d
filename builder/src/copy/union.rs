//! A read-only view of a stack of unpacked layer directories (overlayfs lowerdir format: whiteouts are
//! 0/0 character devices, opaque directories carry `trusted.overlay.opaque=y`), used without mounting:
//! looking up and reading files (`/etc/passwd` for `--chown`), resolving symlinks inside the image, and
//! flattening a stage into a plain directory (hardlinks) for `COPY --from`.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::paths::{clean, resolve_links};

/// Layer directories in image order (`layers[0]` is the base layer).
#[derive(Debug, Clone, Default)]
pub struct Union {
    pub layers: Vec<PathBuf>,
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Opaque as either overlay xattr says (`trusted.overlay.opaque`, or `user.overlay.opaque` in layers
/// unpacked rootless).
fn is_opaque(dir: &Path) -> bool {
    hoist_image::layer::is_opaque(dir)
}

impl Union {
    pub fn new(layers: Vec<PathBuf>) -> Union {
        Union { layers }
    }

    /// The topmost real entry for `path` (absolute in-image, no symlink resolution), or None when it
    /// does not exist or was deleted by a whiteout.
    pub fn lookup(&self, path: &str) -> Option<(PathBuf, fs::Metadata)> {
        let rel = clean(&format!("/{path}"));
        let rel = rel.trim_start_matches('/');
        for layer in self.layers.iter().rev() {
            let p = if rel.is_empty() {
                layer.clone()
            } else {
                layer.join(rel)
            };
            // A whiteout of an ancestor in this layer hides the path.
            let mut anc = Path::new(rel).parent();
            let mut stop = false;
            while let Some(a) = anc {
                if a.as_os_str().is_empty() {
                    break;
                }
                if let Ok(m) = fs::symlink_metadata(layer.join(a)) {
                    if is_whiteout(&m) || !m.is_dir() {
                        return None;
                    }
                    if is_opaque(&layer.join(a)) {
                        stop = true;
                    }
                }
                anc = a.parent();
            }
            if let Ok(m) = fs::symlink_metadata(&p) {
                if is_whiteout(&m) {
                    return None;
                }
                return Some((p, m));
            }
            if stop {
                return None;
            }
        }
        None
    }

    /// Resolves symlinks in `path` as the image would (absolute links are relative to the image root;
    /// see [`resolve_links`] for the loop limit and errors). Returns the resolved absolute in-image
    /// path (which may not exist).
    pub fn resolve(&self, path: &str, follow_last: bool) -> io::Result<String> {
        resolve_links(path, follow_last, &mut |p| self.read_link(p))
    }

    /// The target of `path` (in-image, not resolved) when its topmost entry is a symlink.
    pub fn read_link(&self, path: &str) -> io::Result<Option<String>> {
        match self.lookup(path) {
            Some((p, m)) if m.file_type().is_symlink() => {
                Ok(Some(fs::read_link(&p)?.to_string_lossy().into_owned()))
            }
            _ => Ok(None),
        }
    }

    /// Reads a file of the image (symlinks resolved in the image).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let (p, m) = self.lookup(&self.resolve(path, true).ok()?)?;
        if !m.is_file() {
            return None;
        }
        fs::read(p).ok()
    }

    /// Materialises the merged tree into `dest` (an empty directory) with hardlinks to the layer files.
    pub fn flatten_into(&self, dest: &Path) -> io::Result<()> {
        for layer in &self.layers {
            apply_dir(layer, dest)?;
        }
        Ok(())
    }
}

/// Applies one overlay-format layer directory onto `dest` (whiteouts delete, opaque dirs replace).
fn apply_dir(src: &Path, dest: &Path) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(src)?.collect::<io::Result<Vec<_>>>()?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let sp = e.path();
        let dp = dest.join(e.file_name());
        let m = fs::symlink_metadata(&sp)?;
        let existing = fs::symlink_metadata(&dp).ok();
        if is_whiteout(&m) {
            match existing {
                Some(x) if x.is_dir() => fs::remove_dir_all(&dp)?,
                Some(_) => fs::remove_file(&dp)?,
                None => {}
            }
            continue;
        }
        if m.is_dir() {
            match existing {
                Some(x) if x.is_dir() => {
                    if is_opaque(&sp) {
                        fs::remove_dir_all(&dp)?;
                        fs::create_dir(&dp)?;
                    }
                }
                Some(_) => {
                    fs::remove_file(&dp)?;
                    fs::create_dir(&dp)?;
                }
                None => fs::create_dir(&dp)?,
            }
            copy_meta(&m, &dp)?;
            apply_dir(&sp, &dp)?;
        } else {
            match existing {
                Some(x) if x.is_dir() => fs::remove_dir_all(&dp)?,
                Some(_) => fs::remove_file(&dp)?,
                None => {}
            }
            if fs::hard_link(&sp, &dp).is_err() {
                if m.file_type().is_symlink() {
                    std::os::unix::fs::symlink(fs::read_link(&sp)?, &dp)?;
                } else if m.is_file() {
                    fs::copy(&sp, &dp)?;
                    copy_meta(&m, &dp)?;
                }
            }
        }
    }
    Ok(())
}

fn copy_meta(m: &fs::Metadata, p: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(p, Some(m.uid()), Some(m.gid()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    let t = filetime::FileTime::from_last_modification_time(m);
    filetime::set_symlink_file_times(p, t, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_resolve_and_flatten() {
        let d = tempfile::tempdir().unwrap();
        let l0 = d.path().join("l0");
        let l1 = d.path().join("l1");
        fs::create_dir_all(l0.join("usr/bin")).unwrap();
        fs::create_dir_all(l0.join("etc")).unwrap();
        fs::write(l0.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(l0.join("usr/bin/gone"), "x").unwrap();
        std::os::unix::fs::symlink("usr/bin", l0.join("bin")).unwrap();
        fs::create_dir_all(l1.join("usr/bin")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            l1.join("usr/bin/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .unwrap();
        fs::write(l1.join("usr/bin/new"), "n").unwrap();
        let u = Union::new(vec![l0, l1]);
        assert!(u.lookup("/usr/bin/gone").is_none());
        assert_eq!(u.resolve("/bin/new", true).unwrap(), "/usr/bin/new");
        assert_eq!(u.read("/bin/new").unwrap(), b"n");
        assert!(u.read("/etc/passwd").is_some());
        let out = d.path().join("flat");
        fs::create_dir(&out).unwrap();
        u.flatten_into(&out).unwrap();
        assert!(out.join("usr/bin/new").is_file());
        assert!(!out.join("usr/bin/gone").exists());
    }

    /// Same rules as the host resolver: links resolve across layers, a loop is ELOOP, and a file
    /// behind a loop cannot be read.
    #[test]
    fn resolve_across_layers_and_loops() {
        let d = tempfile::tempdir().unwrap();
        let (l0, l1) = (d.path().join("l0"), d.path().join("l1"));
        fs::create_dir_all(l0.join("etc")).unwrap();
        fs::write(l0.join("etc/real"), "r").unwrap();
        fs::create_dir_all(&l1).unwrap();
        std::os::unix::fs::symlink("/etc/real", l1.join("top")).unwrap();
        std::os::unix::fs::symlink("loop2", l1.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", l1.join("loop2")).unwrap();
        let u = Union::new(vec![l0, l1]);
        assert_eq!(u.resolve("/top", true).unwrap(), "/etc/real");
        assert_eq!(u.resolve("/top", false).unwrap(), "/top");
        let e = u.resolve("/loop1", true).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
        assert_eq!(u.read("/top").unwrap(), b"r");
        assert!(u.read("/loop1").is_none());
    }
}
