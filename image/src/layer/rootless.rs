//! Layers under rootless hoist (running as root of a user namespace): overlayfs is mounted there with
//! `userxattr`, so its private xattrs are `user.overlay.*` instead of `trusted.overlay.*` (which only
//! the host's root may set); device nodes cannot be created; only mapped ids can own files.

use std::path::Path;
use std::sync::OnceLock;

/// This process's user namespace, as far as extraction cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Namespace {
    /// Not the initial user namespace.
    pub rootless: bool,
    /// Only one uid (root) is mapped: no subordinate ids.
    pub single: bool,
    /// The highest uid mapped (inside).
    pub max_uid: u64,
}

/// The namespace /proc/self/uid_map's text describes.
fn summarize(uid_map: &str) -> Namespace {
    let ranges: Vec<(u64, u64, u64)> = uid_map
        .lines()
        .filter_map(|l| {
            let n: Vec<u64> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (n.len() == 3).then(|| (n[0], n[1], n[2]))
        })
        .collect();
    let rootless = ranges != [(0, 0, u32::MAX as u64)];
    let mapped: u64 = ranges.iter().map(|r| r.2).sum();
    Namespace {
        rootless,
        single: rootless && mapped <= 1,
        max_uid: ranges.iter().map(|r| r.0 + r.2).max().unwrap_or(1) - 1,
    }
}

pub(crate) fn namespace() -> Namespace {
    static NS: OnceLock<Namespace> = OnceLock::new();
    *NS.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => summarize(&map),
        Err(_) => Namespace {
            rootless: false,
            single: false,
            max_uid: u32::MAX as u64 - 1,
        },
    })
}

/// Whether this process runs in a user namespace (rootless hoist).
pub fn in_user_namespace() -> bool {
    namespace().rootless
}

/// The xattr overlayfs reads to know a directory is opaque, as this process mounts it:
/// `user.overlay.opaque` in a user namespace (`userxattr`), else `trusted.overlay.opaque`.
pub fn opaque_xattr() -> &'static str {
    if in_user_namespace() {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    }
}

/// Whether `dir` is marked opaque for overlayfs (either xattr name: an extracted layer only ever
/// carries the one its extractor wrote, since layers' own overlay xattrs are dropped).
pub fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|k| has_y(dir, k))
}

/// `name` is set to "y" on `path` (not following a final symlink).
pub(crate) fn has_y(path: &Path, name: &str) -> bool {
    let mut buf = [0u8; 8];
    matches!(rustix::fs::lgetxattr(path, name, &mut buf[..]), Ok(n) if &buf[..n] == b"y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_from_uid_map() {
        let host = summarize("         0          0 4294967295\n");
        assert!(!host.rootless && !host.single);
        let sub = summarize("0 1001 1\n1 100000 65536\n");
        assert!(sub.rootless && !sub.single);
        assert_eq!(sub.max_uid, 65536);
        let single = summarize("0 1001 1\n");
        assert!(single.rootless && single.single);
    }
}
