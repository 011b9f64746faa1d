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

/// Joins `path` (absolute or relative, treated as relative to `root`) under `root`, resolving every
/// symlink met on the way as if `root` were `/`. The last component is followed too when
/// `follow_last`. Never returns a path outside `root`.
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> io::Result<PathBuf> {
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
        let is_last = parts.is_empty();
        let candidate = root.join(resolved.join("/")).join(&part);
        if is_last && !follow_last {
            resolved.push(part);
            break;
        }
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 255 {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = std::fs::read_link(&candidate)?;
                let target = target.to_string_lossy();
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
            _ => resolved.push(part),
        }
    }
    Ok(root.join(resolved.join("/")))
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
}
