//! The root filesystem: overlay mount options (short relative paths when the page limit needs them;
//! `userxattr` when rootless, where overlay keeps its xattrs as `user.overlay.*`), reading image files
//! through the layers, and removing created mountpoints from the upper afterwards.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::mounts::Tracker;
use crate::spec::Rootfs;

/// The kernel accepts one page of mount options.
const MAX_OPTIONS: usize = 4000;

fn escape(p: &Path) -> Result<String> {
    let s = p.to_string_lossy();
    if s.contains([',', ':']) {
        return Err(Error::Invalid(format!(
            "overlay paths cannot contain ',' or ':': {s}"
        )));
    }
    Ok(s.into_owned())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    fs::canonicalize(p).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
}

/// (directory to chdir into, overlay options) for `lowers` (image order), `upper`, `work`.
pub fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<(PathBuf, String)> {
    let (cwd, data) = layer_options(lowers, upper, work)?;
    if crate::userns::rootless() {
        // Trusted xattrs are the host root's: in a user namespace overlay uses user.overlay.*.
        return Ok((cwd, format!("{data},userxattr")));
    }
    Ok((cwd, data))
}

/// Lowers, topmost first, each directory once: overlayfs refuses a lower list that names one
/// directory twice (ELOOP). Layers are content-addressed, so two equal layers (two steps that change
/// nothing) share a directory, and dropping the lower occurrence changes nothing in the merged view.
fn top_first_unique(lowers: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(lowers.len());
    for p in lowers.iter().rev() {
        let p = absolute(p)?;
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    Ok(out)
}

fn layer_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<(PathBuf, String)> {
    let lowers = top_first_unique(lowers)?;
    let upper = absolute(upper)?;
    let work = absolute(work)?;
    let build = |base: &Path| -> Result<String> {
        let rel = |p: &Path| -> Result<String> {
            escape(
                p.strip_prefix(base)
                    .ok()
                    .filter(|r| !r.as_os_str().is_empty())
                    .unwrap_or(p),
            )
        };
        let lower: Vec<String> = lowers.iter().map(|p| rel(p)).collect::<Result<_>>()?;
        Ok(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            rel(&upper)?,
            rel(&work)?
        ))
    };
    let data = build(Path::new("/nonexistent-base"))?;
    if data.len() <= MAX_OPTIONS {
        return Ok((PathBuf::from("/"), data));
    }
    // Relative to the deepest common ancestor.
    let mut base = upper.clone();
    for p in lowers.iter().chain([&work]) {
        while !p.starts_with(&base) {
            if !base.pop() {
                break;
            }
        }
    }
    let data = build(&base)?;
    if data.len() > MAX_OPTIONS {
        return Err(Error::Invalid(format!(
            "overlay options too long ({} bytes, {} layers)",
            data.len(),
            lowers.len()
        )));
    }
    Ok((base, data))
}

/// Removes the marker a `volatile` overlay mount leaves in its work directory (`work/incompat/volatile`),
/// without which the kernel refuses to mount with that work directory again.
pub fn clear_volatile(work: &Path) {
    let incompat = work.join("work/incompat");
    if incompat.exists() {
        let _ = fs::remove_dir_all(incompat);
    }
}

/// Where `rel` may be, in the order the container's view looks: the upper first, then the lowers
/// from the topmost down.
fn candidates(rootfs: &Rootfs, rel: &str) -> Vec<PathBuf> {
    match rootfs {
        Rootfs::Dir(d) => vec![d.join(rel)],
        Rootfs::Overlay { lowers, upper, .. } => std::iter::once(upper.join(rel))
            .chain(lowers.iter().rev().map(|l| l.join(rel)))
            .collect(),
    }
}

/// Reads `rel` (e.g. "etc/passwd") as the container would see it: upper first, then the lowers from
/// the topmost down. Missing: empty.
pub fn read_file(rootfs: &Rootfs, rel: &str) -> String {
    for c in candidates(rootfs, rel) {
        match fs::symlink_metadata(&c) {
            Ok(m) if m.is_file() => return fs::read_to_string(&c).unwrap_or_default(),
            Ok(_) => return String::new(), // a whiteout or something else: treat as missing
            Err(_) => continue,
        }
    }
    String::new()
}

/// The directories runc creates for /dev, /proc and /sys and BuildKit leaves in a RUN step's layer
/// when the image lacks them (root's, 0755).
const SYSTEM_DIRS: [&str; 3] = ["dev", "proc", "sys"];

/// Whether `rel` exists in the image `rootfs` shows (the upper first, then the lowers from the
/// topmost down; an overlay whiteout, a 0/0 character device, hides what is below it).
fn exists_in_image(rootfs: &Rootfs, rel: &str) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for c in candidates(rootfs, rel) {
        if let Ok(m) = fs::symlink_metadata(&c) {
            return !(m.file_type().is_char_device() && m.rdev() == 0);
        }
    }
    false
}

/// Creates /dev, /proc and /sys (0755) in the writable layer where the image has none, as runc does
/// for a BuildKit RUN step: they stay in the step's layer (an empty image's first RUN adds them).
pub fn create_system_dirs(rootfs: &Rootfs) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let base = match rootfs {
        Rootfs::Dir(d) => d,
        Rootfs::Overlay { upper, .. } => upper,
    };
    for name in SYSTEM_DIRS {
        if exists_in_image(rootfs, name) {
            continue;
        }
        let dir = base.join(name);
        fs::DirBuilder::new().mode(0o755).create(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Opaque as overlay marked it (`user.overlay.opaque` when rootless).
fn is_opaque(p: &Path) -> bool {
    let name = if crate::userns::rootless() {
        c"user.overlay.opaque"
    } else {
        c"trusted.overlay.opaque"
    };
    let mut buf = [0u8; 4];
    rustix::fs::lgetxattr(p, name, &mut buf).is_ok_and(|n| n > 0)
}

/// Removes the mountpoints the child created (`created[i]`) from the rootfs's writable directory, and
/// then parent directories that only got copied up because of them (empty, not opaque, present in a
/// lower), so the upper holds nothing but the command's own changes.
pub fn remove_created(rootfs: &Rootfs, tracker: &Tracker, created: &[u8]) -> io::Result<()> {
    let (base, lowers): (&Path, &[PathBuf]) = match rootfs {
        Rootfs::Dir(d) => (d, &[]),
        Rootfs::Overlay { upper, lowers, .. } => (upper, lowers),
    };
    let mut parents: Vec<PathBuf> = Vec::new();
    for (i, (rel, file)) in tracker.entries.iter().enumerate().rev() {
        if created.get(i) != Some(&1) {
            continue;
        }
        let path = base.join(rel);
        let r = if *file {
            fs::remove_file(&path)
        } else {
            fs::remove_dir(&path)
        };
        match Path::new(rel).parent() {
            Some(parent) if r.is_ok() && parent.components().next().is_some() => {
                parents.push(parent.to_path_buf())
            }
            _ => {}
        }
    }
    for rel in parents {
        let mut rel = rel;
        loop {
            let up = base.join(&rel);
            let empty = fs::read_dir(&up).is_ok_and(|mut d| d.next().is_none());
            let in_lower = lowers.iter().any(|l| l.join(&rel).is_dir());
            if !(empty && in_lower && !is_opaque(&up)) || fs::remove_dir(&up).is_err() {
                break;
            }
            if !rel.pop() || rel.components().all(|c| matches!(c, Component::CurDir)) {
                break;
            }
            if rel.as_os_str().is_empty() {
                break;
            }
        }
    }
    Ok(())
}

/// Whether `path` is on a filesystem usable as an overlay upper (not overlay itself).
pub fn overlay_capable(path: &Path) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c7630;
    rustix::fs::statfs(path).is_ok_and(|st| st.f_type != OVERLAYFS_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_layers_are_named_once_topmost_kept() {
        let t = tempfile::tempdir().unwrap();
        let [a, b, c] = ["a", "b", "c"].map(|n| {
            let p = t.path().join(n);
            fs::create_dir(&p).unwrap();
            p
        });
        let (upper, work) = (t.path().join("c"), t.path().join("a"));
        // image order a, b, b, c, b: overlay order (top first) b, c, a.
        let lowers = [a.clone(), b.clone(), b.clone(), c.clone(), b.clone()];
        let (_, data) = layer_options(&lowers, &upper, &work).unwrap();
        let list = data
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("lowerdir=");
        let want = [&b, &c, &a]
            .map(|p| p.to_string_lossy().into_owned())
            .join(":");
        assert_eq!(list, want);
    }
}
