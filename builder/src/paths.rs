//! Path helpers: Go's `path.Clean`, and resolving a path inside a root directory the way a chroot would
//! (symlinks followed but never out of the root).

use std::io;
use std::path::{Path, PathBuf};

/// Go's `path.Clean` on `/`-separated paths: collapses `//`, `.` and `..`; empty becomes `.`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Most symlinks followed while resolving one path; one more fails with `ELOOP` ("too many levels of
/// symbolic links"). 255 is BuildKit's limit (continuity's `fs.RootPath`, which Docker's COPY uses);
/// Linux stops at 40, so any path the kernel resolves resolves here too.
pub const MAX_SYMLINKS: usize = 255;

/// Resolves `path` (absolute or relative, taken from the root) component by component as a chroot
/// would: `..` never climbs above the root and an absolute symlink target restarts from it. Every
/// component reached is passed, as an absolute in-root path (`/a/b`), to `read_link`, which says
/// `Ok(Some(target))` for a symlink and `Ok(None)` for anything else, a missing path included; its
/// errors (a failing `lstat` or `readlink` on an existing entry) fail the resolution. The last
/// component is followed only when `follow_last`. Returns the resolved absolute in-root path, which
/// need not exist; following more than [`MAX_SYMLINKS`] links is `ELOOP`.
pub fn resolve_links(
    path: &str,
    follow_last: bool,
    read_link: &mut dyn FnMut(&str) -> io::Result<Option<String>>,
) -> io::Result<String> {
    let mut parts: Vec<String> = clean(&format!("/{path}"))
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .rev()
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = parts.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        if parts.is_empty() && !follow_last {
            resolved.push(part);
            break;
        }
        let candidate = if resolved.is_empty() {
            format!("/{part}")
        } else {
            format!("/{}/{part}", resolved.join("/"))
        };
        match read_link(&candidate)? {
            Some(target) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(
                        rustix::io::Errno::LOOP.raw_os_error(),
                    ));
                }
                if target.starts_with('/') {
                    resolved.clear();
                }
                for t in target
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .rev()
                {
                    parts.push(t.to_string());
                }
            }
            None => resolved.push(part),
        }
    }
    Ok(format!("/{}", resolved.join("/")))
}

/// Joins `path` (absolute or relative, treated as relative to `root`) under `root`, resolving every
/// symlink met on the way as if `root` were `/` ([`resolve_links`] over the host directory). The last
/// component is followed too when `follow_last`. Never returns a path outside `root`.
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> io::Result<PathBuf> {
    let resolved = resolve_links(path, follow_last, &mut |p| {
        let host = root.join(p.trim_start_matches('/'));
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => Ok(Some(
                std::fs::read_link(&host)?.to_string_lossy().into_owned(),
            )),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    })?;
    Ok(root.join(resolved.trim_start_matches('/')))
}

/// Whether an `lstat` error means "nothing there" (missing, or a parent is not a directory).
pub fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("a/"), "a");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn symlinks_stay_in_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("up")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/abs/x", true).unwrap(),
            root.join("real/x")
        );
        assert_eq!(
            resolve_in_root(root, "up/passwd", true).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(root, "abs", false).unwrap(),
            root.join("abs")
        );
    }

    /// Chains up to [`MAX_SYMLINKS`] links resolve; one more, or a loop, is ELOOP as in the kernel.
    #[test]
    fn symlink_limit_and_loops() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("end"), "").unwrap();
        let mut prev = "end".to_string();
        for i in 0..MAX_SYMLINKS {
            let name = format!("l{i}");
            std::os::unix::fs::symlink(&prev, root.join(&name)).unwrap();
            prev = name;
        }
        let last = format!("l{}", MAX_SYMLINKS - 1);
        assert_eq!(
            resolve_in_root(root, &last, true).unwrap(),
            root.join("end")
        );
        std::os::unix::fs::symlink(&last, root.join("one-more")).unwrap();
        let e = resolve_in_root(root, "one-more", true).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
        std::os::unix::fs::symlink("b", root.join("a")).unwrap();
        std::os::unix::fs::symlink("/a", root.join("b")).unwrap();
        assert!(resolve_in_root(root, "a/x", true).is_err());
        // Not followed: the loop is never entered.
        assert_eq!(resolve_in_root(root, "a", false).unwrap(), root.join("a"));
    }

    /// A missing path or a file used as a directory is "not a link"; any other failure to look a
    /// component up (here a name longer than the filesystem allows) fails the resolution.
    #[test]
    fn lookup_errors_fail_unless_absent() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("file"), "").unwrap();
        assert_eq!(
            resolve_in_root(root, "missing/x", true).unwrap(),
            root.join("missing/x")
        );
        assert_eq!(
            resolve_in_root(root, "file/x", true).unwrap(),
            root.join("file/x")
        );
        let long = "n".repeat(300);
        let e = resolve_in_root(root, &format!("{long}/x"), true).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::NAMETOOLONG.raw_os_error())
        );
        // The closure's errors are the resolution's.
        let e = resolve_links("/a/b", true, &mut |p| {
            if p == "/a" {
                Err(io::Error::other("readlink failed"))
            } else {
                Ok(None)
            }
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "readlink failed");
    }
}
