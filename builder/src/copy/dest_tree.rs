//! What one COPY/ADD writes, planned in memory before anything touches the disk: a tree of the
//! entries its layer will hold. The copy rules ([`crate::copy`]) fill it; [`crate::copy::layer_out`] then
//! writes the layer tar (and, when a later step needs them, the layer's unpacked files) from it in
//! one pass, reading each source file once.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One entry of the layer.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Seconds since the epoch (layers keep no sub-second times).
    pub mtime: i64,
    /// A directory copied from a source keeps the source's mtime (set after its content, as
    /// BuildKit does); other directories get the build's time when an entry is added to them.
    pub fixed_mtime: bool,
    /// The path may exist in the layers below (false: new here, and so is everything under it).
    pub lower: bool,
    /// Directory content, by name bytes (the layer tar's order).
    pub children: BTreeMap<Vec<u8>, Node>,
}

/// What an entry is.
#[derive(Debug, Clone)]
pub enum Kind {
    Dir,
    File(FileSource),
    /// A symlink and its target.
    Symlink(Vec<u8>),
    /// A character or block device or a fifo: its file type bits (`S_IFMT`) and device number.
    Special {
        file_type: u32,
        rdev: u64,
    },
}

/// Where a regular file's content comes from.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
    pub size: u64,
    /// A file in a scratch tree hoist made (an unpacked ADD archive): it may be moved into the
    /// unpacked layer instead of copied.
    pub scratch: bool,
    /// Files with the same key are one file under several names (hardlinks) in the layer: the
    /// first in the layer's order holds the content, the others link to it.
    pub link: Option<LinkKey>,
}

/// A hardlink group of one copied source and the source inode: `(group, dev, ino)`.
pub type LinkKey = (u64, u64, u64);

impl Node {
    /// A directory.
    pub fn dir(uid: u32, gid: u32, mode: u32, mtime: i64, fixed_mtime: bool) -> Node {
        Node {
            kind: Kind::Dir,
            uid,
            gid,
            mode,
            mtime,
            fixed_mtime,
            lower: true,
            children: BTreeMap::new(),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir)
    }
}

/// A lookup in the tree.
#[derive(Debug)]
pub enum Found<'a> {
    Node(&'a Node),
    /// Not in the tree: the image's layers decide, unless `lower` is false (its directory is new).
    Absent {
        lower: bool,
    },
    /// An ancestor in the tree is not a directory: the path does not exist at all.
    Hidden,
}

/// The layer's entries under its root directory (which is not an entry itself).
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: Node,
    /// The build's time (seconds), for directories that get new entries.
    pub now: i64,
    /// Some directory below the root has a fixed mtime (see [`Tree::unfix_mtimes`]).
    fixed: bool,
}

fn components(path: &str) -> impl Iterator<Item = &[u8]> {
    path.split('/').filter(|c| !c.is_empty()).map(str::as_bytes)
}

impl Tree {
    pub fn new(now: i64) -> Tree {
        Tree {
            root: Node::dir(0, 0, 0o755, now, true),
            now,
            fixed: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.root.children.is_empty()
    }

    /// Lets every directory's mtime move again when entries are added to it (a directory copied
    /// from a source keeps the source's mtime only until a later source adds to it).
    pub fn unfix_mtimes(&mut self) {
        if !std::mem::take(&mut self.fixed) {
            return;
        }
        fn walk(n: &mut Node) {
            for c in n.children.values_mut().filter(|c| c.is_dir()) {
                c.fixed_mtime = false;
                walk(c);
            }
        }
        walk(&mut self.root);
    }

    /// The entry at `path` (absolute in-image, cleaned, not resolved).
    pub fn find(&self, path: &str) -> Found<'_> {
        let mut cur = &self.root;
        for c in components(path) {
            if !cur.is_dir() {
                return Found::Hidden;
            }
            match cur.children.get(c) {
                Some(n) => cur = n,
                None => return Found::Absent { lower: cur.lower },
            }
        }
        Found::Node(cur)
    }

    /// Puts `node` at `path`, whose parent must be a directory of the tree. Onto a directory, a
    /// directory merges (content kept, metadata replaced); anything else replaces what is there.
    /// `new_name`: nothing had this name before (in the tree or below), so the parent's mtime moves
    /// to the build's time unless it is fixed. False (nothing done) when the parent is not a
    /// directory of the tree, or `path` is the root.
    pub fn put(&mut self, path: &str, mut node: Node, new_name: bool) -> bool {
        let comps: Vec<&[u8]> = components(path).collect();
        let Some((name, parents)) = comps.split_last() else {
            return false;
        };
        self.fixed |= node.fixed_mtime;
        let mut dir = &mut self.root;
        for c in parents {
            match dir.children.get_mut(*c) {
                Some(n) if n.is_dir() => dir = n,
                _ => return false,
            }
        }
        if new_name && !dir.fixed_mtime {
            dir.mtime = self.now;
        }
        node.lower = !new_name;
        if let Some(old) = dir.children.get_mut(*name) {
            node.lower = old.lower;
            if old.is_dir() && node.is_dir() {
                node.children = std::mem::take(&mut old.children);
            }
        }
        dir.children.insert(name.to_vec(), node);
        true
    }

    /// A digest of the layer this tree makes: every entry's path, type, owner, mode, mtime (as the
    /// layer stores it: `clamp`ed), link target, device and file content (`content` gives a file's
    /// digest) and which files are hardlinks of which. Equal digests mean byte-identical layers.
    /// None when a content digest is unknown (scratch files are never hashed).
    pub fn digest(
        &self,
        clamp: &dyn Fn(i64) -> i64,
        content: &dyn Fn(&FileSource) -> Option<String>,
    ) -> Option<String> {
        use sha2::Digest as _;
        struct Ctx<'a> {
            h: sha2::Sha256,
            clamp: &'a dyn Fn(i64) -> i64,
            content: &'a dyn Fn(&FileSource) -> Option<String>,
            /// Each hardlink group's first path.
            links: std::collections::HashMap<LinkKey, Vec<u8>>,
        }
        fn walk(n: &Node, path: &mut Vec<u8>, cx: &mut Ctx<'_>) -> Option<()> {
            for (name, c) in &n.children {
                let len = path.len();
                path.push(b'/');
                path.extend_from_slice(name);
                let first = match &c.kind {
                    Kind::File(FileSource { link: Some(k), .. }) => match cx.links.get(k) {
                        Some(p) => Some(hex::encode(p)),
                        None => {
                            cx.links.insert(*k, path.clone());
                            None
                        }
                    },
                    _ => None,
                };
                let what = match &c.kind {
                    Kind::Dir => "d".to_string(),
                    Kind::File(_) if first.is_some() => format!("h {}", first.unwrap_or_default()),
                    Kind::File(f) if f.scratch => return None,
                    Kind::File(f) => format!("f {} {}", f.size, (cx.content)(f)?),
                    Kind::Symlink(t) => format!("l {}", hex::encode(t)),
                    Kind::Special { file_type, rdev } => format!("s {file_type:o} {rdev}"),
                };
                let line = format!(
                    "{} {what} {}:{} {:o} {}\n",
                    hex::encode(&path[..]),
                    c.uid,
                    c.gid,
                    c.mode,
                    (cx.clamp)(c.mtime)
                );
                cx.h.update(line.as_bytes());
                walk(c, path, cx)?;
                path.truncate(len);
            }
            Some(())
        }
        let mut cx = Ctx {
            h: sha2::Sha256::new(),
            clamp,
            content,
            links: Default::default(),
        };
        cx.h.update(b"hoist-layer-tree-v2\n");
        walk(&self.root, &mut Vec::new(), &mut cx)?;
        Some(format!("sha256:{}", hex::encode(cx.h.finalize())))
    }

    /// Every entry, depth first in the layer tar's order, with its path relative to the root.
    pub fn entries(&self) -> Vec<(String, &Node)> {
        fn walk<'a>(n: &'a Node, prefix: &str, out: &mut Vec<(String, &'a Node)>) {
            for (name, c) in &n.children {
                let p = format!("{prefix}{}", String::from_utf8_lossy(name));
                out.push((p.clone(), c));
                walk(c, &format!("{p}/"), out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, "", &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> Node {
        Node {
            kind: Kind::File(FileSource {
                path: p.into(),
                size: 0,
                scratch: false,
                link: None,
            }),
            uid: 0,
            gid: 0,
            mode: 0o644,
            mtime: 5,
            fixed_mtime: false,
            lower: true,
            children: BTreeMap::new(),
        }
    }

    #[test]
    fn put_find_merge_replace() {
        let mut t = Tree::new(100);
        assert!(t.put("/a", Node::dir(0, 0, 0o755, 1, false), true));
        assert!(t.put("/a/f", file("/x"), true));
        assert!(!t.put("/nowhere/f", file("/x"), true));
        assert_eq!(t.find("/a").is_dir_with_mtime(), Some(100));
        // A directory onto a directory keeps the content, takes the new metadata.
        t.put("/a", Node::dir(1, 1, 0o700, 7, true), false);
        let Found::Node(a) = t.find("/a") else {
            panic!()
        };
        assert_eq!((a.uid, a.mode, a.mtime), (1, 0o700, 7));
        assert!(matches!(t.find("/a/f"), Found::Node(_)));
        // A fixed mtime stays when entries are added.
        t.put("/a/g", file("/y"), true);
        assert_eq!(t.find("/a").is_dir_with_mtime(), Some(7));
        assert!(matches!(t.find("/a/f/deeper"), Found::Hidden));
        assert!(matches!(t.find("/b"), Found::Absent { lower: true }));
        assert!(matches!(t.find("/a/new"), Found::Absent { lower: false }));
        // A file replaces a directory and its content.
        t.put("/a", file("/z"), false);
        assert!(matches!(t.find("/a/f"), Found::Hidden));
        let names: Vec<String> = t.entries().into_iter().map(|(p, _)| p).collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn digest_names_the_layer_content() {
        let mk = |mtime: i64, content: &'static str| {
            let mut t = Tree::new(100);
            t.put("/a", Node::dir(0, 0, 0o755, 1, true), true);
            let mut f = file(content);
            f.mtime = mtime;
            t.put("/a/f", f, true);
            t
        };
        let known = |s: &FileSource| Some(s.path.to_string_lossy().into_owned());
        let same = |t: i64| t;
        let d = mk(5, "x").digest(&same, &known).unwrap();
        assert_eq!(mk(5, "x").digest(&same, &known).unwrap(), d);
        assert_ne!(mk(6, "x").digest(&same, &known).unwrap(), d);
        assert_ne!(mk(5, "y").digest(&same, &known).unwrap(), d);
        // Clamped to the same time: the same layer.
        let clamp = |t: i64| t.min(4);
        assert_eq!(
            mk(5, "x").digest(&clamp, &known),
            mk(6, "x").digest(&clamp, &known)
        );
        assert!(mk(5, "x").digest(&same, &|_| None).is_none());
    }

    impl Found<'_> {
        fn is_dir_with_mtime(&self) -> Option<i64> {
            match self {
                Found::Node(n) if n.is_dir() => Some(n.mtime),
                _ => None,
            }
        }
    }
}
