//! COPY/ADD without a container: resolves sources (Go `filepath.Match` wildcards) in a source root,
//! hashes them for cache keys, and copies them into a destination root filesystem with Docker's rules
//! (a directory's contents rather than the directory, trailing-slash destinations, `--chown`,
//! `--chmod`, `--exclude`, `--parents`), unpacking local archives for ADD.
//!
//! Owns: sources ([`sources`]), the planned destination ([`dest_tree`]), writing it as a layer
//! ([`layer_out`], [`lay_pool`]), layered read views ([`union`]) and `--chown` names ([`users`]).
//! Must not touch: Dockerfile syntax (the frontend's), step keys or scheduling (the solver's).

pub mod dest_tree;
pub mod lay_pool;
pub mod layer_out;
pub mod sources;
pub mod union;
pub mod users;

use std::cell::RefCell;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::context::archive::{is_archive, unpack_archive};
pub use crate::context::dockerignore::has_wildcard;
use crate::context::{SourceRoot, WalkEntry, join_rel, walk};
use crate::copy::dest_tree::{FileSource, Found, Kind, Node, Tree};
use crate::copy::union::Union;
use crate::paths::{clean, resolve_in_root, resolve_links};

pub use self::sources::{
    Matched, NotFound, Reads, digest_sources, resolve_in_layers, resolve_sources,
};
use self::sources::{exclude_of, rel_of};

/// How sources are copied.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--chown` resolved to numeric ids.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`: octal bits, or a symbolic change of each copied entry's own mode.
    pub chmod: Option<hoist_parser::chmod::Chmod>,
    /// `--exclude` patterns, relative to each source.
    pub exclude: Vec<String>,
    /// `--parents`: keep each source's path (from `/./` on when present).
    pub parents: bool,
    /// Keep the sources' owners (copies from a stage or image); otherwise files are owned by 0:0.
    pub preserve_owner: bool,
    /// ADD: unpack local tar archives (plain, gzip, bzip2, xz, zstd) instead of copying them.
    pub unpack_archives: bool,
}

/// Where a COPY writes: the entries it plans ([`Tree`]) over the image's layers (`view`). Paths are
/// resolved in the merged view (the tree on top); directories the tree needs that exist below are
/// copied up with their metadata. [`copy_into`] lays the plan down into `upper` at once; the solver
/// instead turns it into a layer with [`crate::copy::layer_out`].
#[derive(Debug)]
pub struct DestFs {
    /// Where [`copy_into`] writes (also the top of `view`); None for a plan only.
    pub upper: Option<PathBuf>,
    pub view: Union,
    pub tree: RefCell<Tree>,
    /// Where ADD unpacks archives before they join the plan.
    pub scratch: PathBuf,
    /// Scratch trees the plan reads from (kept until the plan is written).
    pub keep: RefCell<Vec<tempfile::TempDir>>,
    /// Hardlink groups handed out so far (see [`DestFs::link_group`]).
    groups: std::cell::Cell<u64>,
}

impl DestFs {
    /// A destination over `lowers` (image order) writing into the directory `upper`.
    pub fn new(lowers: Vec<PathBuf>, upper: PathBuf) -> DestFs {
        let mut layers = lowers;
        layers.push(upper.clone());
        let scratch = upper.parent().unwrap_or(Path::new("/tmp")).to_path_buf();
        let mut d = DestFs::plan(layers, scratch);
        d.upper = Some(upper);
        d
    }

    /// A plan over `lowers` (image order), unpacking ADD archives under `scratch`.
    pub fn plan(lowers: Vec<PathBuf>, scratch: PathBuf) -> DestFs {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        DestFs {
            upper: None,
            view: Union::new(lowers),
            tree: RefCell::new(Tree::new(now)),
            scratch,
            keep: RefCell::new(Vec::new()),
            groups: std::cell::Cell::new(0),
        }
    }

    /// A new hardlink group: BuildKit keeps hardlinks only among the files of one copied source
    /// (a directory or an archive), never across sources.
    fn link_group(&self) -> u64 {
        let g = self.groups.get() + 1;
        self.groups.set(g);
        g
    }

    /// Resolves `path` in the merged view (the plan over the layers).
    pub fn resolve(&self, path: &str, follow_last: bool) -> io::Result<String> {
        let tree = self.tree.borrow();
        resolve_links(path, follow_last, &mut |p| match tree.find(p) {
            Found::Node(n) => Ok(match &n.kind {
                Kind::Symlink(t) => Some(String::from_utf8_lossy(t).into_owned()),
                _ => None,
            }),
            Found::Hidden | Found::Absent { lower: false } => Ok(None),
            Found::Absent { lower: true } => self.view.read_link(p),
        })
    }

    /// Whether `path` (not resolved) exists in the merged view.
    fn exists(&self, path: &str) -> bool {
        match self.tree.borrow().find(path) {
            Found::Node(_) => true,
            Found::Hidden => false,
            Found::Absent { lower } => lower && self.view.lookup(path).is_some(),
        }
    }

    /// Whether `path` (not resolved) is a directory in the merged view; None when absent.
    fn existing_is_dir(&self, path: &str) -> Option<bool> {
        match self.tree.borrow().find(path) {
            Found::Node(n) => Some(n.is_dir()),
            Found::Hidden | Found::Absent { lower: false } => None,
            Found::Absent { lower: true } => self.view.lookup(path).map(|(_, m)| m.is_dir()),
        }
    }

    fn is_dir(&self, path: &str) -> bool {
        let Ok(r) = self.resolve(path, true) else {
            return false;
        };
        match self.tree.borrow().find(&r) {
            Found::Node(n) => n.is_dir(),
            Found::Hidden => false,
            Found::Absent { lower } => {
                lower && self.view.lookup(&r).is_some_and(|(_, m)| m.is_dir())
            }
        }
    }

    /// Adds `node` at `path` (in-image, its parent planned as a directory).
    fn put(&self, path: &str, node: Node) -> Result<()> {
        let new_name = !self.exists(path);
        if !self.tree.borrow_mut().put(path, node, new_name) {
            bail!("cannot copy to {path}: its parent is not a directory of the copy");
        }
        Ok(())
    }
}

/// Copies the matched sources into `dest_fs` at `dest` (absolute, in-image), then writes them into
/// its `upper` directory (replacing what is there, merging directories).
pub fn copy_into(
    src: &SourceRoot,
    matched: &[Matched],
    dest_fs: &DestFs,
    dest: &str,
    opts: &CopyOptions,
) -> Result<()> {
    plan_copy(src, matched, dest_fs, dest, opts, None)?;
    let upper = dest_fs
        .upper
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("copy_into needs a destination directory"))?;
    let now = dest_fs.tree.borrow().now;
    let tree = dest_fs.tree.replace(Tree::new(now));
    crate::copy::layer_out::lay_down(&tree, upper)?;
    dest_fs.keep.borrow_mut().clear();
    Ok(())
}

/// Plans copying the matched sources into `dest_fs` at `dest` (absolute, in-image) with BuildKit's
/// rules: each source is copied on its own, into `dest` when it ends with `/` or is a directory by
/// then, else onto `dest` (so several files onto one name leave the last). `walks` are source
/// directories already walked (while hashing), reused instead of walked again.
pub fn plan_copy(
    src: &SourceRoot,
    matched: &[Matched],
    dest_fs: &DestFs,
    dest: &str,
    opts: &CopyOptions,
    walks: Option<&Walks>,
) -> Result<()> {
    let exclude = exclude_of(opts)?;
    let dest_is_dir_syntax = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
    let dest_clean = clean(dest);
    // Directories the copy creates: `--chmod`'s octal bits (without setuid/setgid/sticky) or 0755,
    // owned by `--chown`'s user or root.
    let new_dir = NewDir {
        mode: opts
            .chmod
            .as_ref()
            .and_then(|c| c.octal())
            .map_or(0o755, |m| m & 0o777),
        owner: opts.chown.unwrap_or((0, 0)),
    };
    for m in matched {
        // A directory's mtime is set after its own copy; later sources change it again.
        dest_fs.tree.borrow_mut().unfix_mtimes();
        let path = resolve_in_root(&src.root, &m.rel, true)?;
        let meta = fs::symlink_metadata(&path)?;
        let into_dir = dest_is_dir_syntax || dest_fs.is_dir(&dest_clean);
        if meta.is_dir() {
            let target_rel = if opts.parents {
                join_rel(&dest_clean, &m.keep)
            } else {
                dest_clean.clone()
            };
            // BuildKit makes the directories up to a `dir/` destination (`mkdir X: not a
            // directory` when a file is in the way) but copies a directory onto a plain name.
            if !dest_is_dir_syntax {
                let resolved = dest_fs.resolve(&target_rel, true)?;
                if dest_fs.existing_is_dir(&resolved) == Some(false) {
                    bail!("cannot copy to non-directory: {resolved}");
                }
            }
            let target = ensure_dir(dest_fs, &target_rel, &new_dir, Some(meta.mtime()))?;
            let start = rel_of(src, &path, &m.rel);
            let walked;
            let entries = match walks.and_then(|w| w.get(&start)) {
                Some(e) => e,
                None => {
                    walked = walk(src, &start, exclude.as_ref())?;
                    &walked
                }
            };
            let links = Some(dest_fs.link_group());
            for e in entries {
                put_entry(dest_fs, e, &join_abs(&target, &e.rel), opts, links, false)?;
            }
        } else if opts.unpack_archives && meta.is_file() && is_archive(&path) {
            // BuildKit makes an archive's destination 0755 whatever `--chmod` says.
            let archive_dir = NewDir {
                mode: 0o755,
                ..new_dir
            };
            let target = ensure_dir(dest_fs, &dest_clean, &archive_dir, None)?;
            fs::create_dir_all(&dest_fs.scratch)?;
            let scratch = tempfile::Builder::new()
                .prefix("add-")
                .tempdir_in(&dest_fs.scratch)?;
            unpack_archive(&path, scratch.path(), opts.chown.is_none())?;
            // The archive's entries keep their owners (or take --chown's) and modes (never
            // --chmod's): owners are set on the layer's entries, so chown never clears a setuid bit.
            let as_is = CopyOptions {
                chown: opts.chown,
                chmod: None,
                preserve_owner: true,
                ..CopyOptions::default()
            };
            let links = Some(dest_fs.link_group());
            for e in walk(&SourceRoot::plain(scratch.path()), "", None)? {
                put_entry(dest_fs, &e, &join_abs(&target, &e.rel), &as_is, links, true)?;
            }
            dest_fs.keep.borrow_mut().push(scratch);
        } else {
            let name = Path::new(&m.rel)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // As BuildKit's copier, a destination naming a symlink is written through it (the
            // link stays; its target, within the root, is created or replaced); a name joined to a
            // directory destination is not followed (an existing symlink there is replaced).
            let file_rel = if opts.parents {
                join_rel(&dest_clean, &m.keep)
            } else if into_dir {
                join_rel(&dest_clean, &name)
            } else {
                dest_fs.resolve(&dest_clean, true)?
            };
            let parent = Path::new(&file_rel)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".into());
            let pdir = ensure_dir(dest_fs, &parent, &new_dir, None)?;
            let fname = Path::new(&file_rel)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            let e = WalkEntry {
                rel: String::new(),
                path: path.clone(),
                meta,
            };
            put_entry(dest_fs, &e, &join_abs(&pdir, &fname), opts, None, false)?;
        }
    }
    Ok(())
}

/// Walks already made (while hashing), by start path relative to the source root.
pub type Walks = std::collections::HashMap<String, Vec<WalkEntry>>;

/// `dir` (absolute in-image) joined with a relative path.
fn join_abs(dir: &str, rel: &str) -> String {
    format!("{}/{rel}", dir.trim_end_matches('/'))
}

/// Mode and owner of the directories a copy creates.
#[derive(Debug, Clone, Copy)]
struct NewDir {
    mode: u32,
    owner: (u32, u32),
}

/// Plans `rel` (in-image path, symlinks resolved in the image) as a directory of the layer and
/// returns its resolved in-image path. Directories that exist below are copied up with their
/// metadata; new ones get `new`'s mode and owner and the build's time. With `mtime` (the target of
/// a directory's copy), the last one, new or not, takes that mtime once its content is in.
fn ensure_dir(dest_fs: &DestFs, rel: &str, new: &NewDir, mtime: Option<i64>) -> Result<String> {
    let resolved = dest_fs.resolve(rel, true)?;
    let comps: Vec<&str> = resolved.split('/').filter(|c| !c.is_empty()).collect();
    let mut in_image = String::new();
    for (i, comp) in comps.iter().enumerate() {
        in_image.push('/');
        in_image.push_str(comp);
        let last_mtime = mtime.filter(|_| i + 1 == comps.len());
        let lower = match dest_fs.tree.borrow().find(&in_image) {
            Found::Node(n) if n.is_dir() && last_mtime.is_none() => continue,
            Found::Node(n) if n.is_dir() => Err(Node::dir(n.uid, n.gid, n.mode, n.mtime, false)),
            Found::Node(_) | Found::Hidden => bail!("mkdir {in_image}: not a directory"),
            Found::Absent { lower } => Ok(lower),
        };
        let below = match lower {
            Ok(true) => dest_fs.view.lookup(&in_image),
            _ => None,
        };
        let now = dest_fs.tree.borrow().now;
        let mut node = match (lower, below) {
            // Already planned: only its mtime changes (`put` keeps its content).
            (Err(n), _) => n,
            (_, Some((_, m))) if m.is_dir() => {
                Node::dir(m.uid(), m.gid(), m.mode() & 0o7777, m.mtime(), false)
            }
            (_, Some(_)) => bail!("mkdir {in_image}: not a directory"),
            (_, None) => Node::dir(new.owner.0, new.owner.1, new.mode, now, false),
        };
        if let Some(t) = last_mtime {
            node.mtime = t;
            node.fixed_mtime = true;
        }
        dest_fs.put(&in_image, node)?;
    }
    Ok(resolved)
}

/// Plans one file, directory (not its content), symlink or special file at `to` (in-image),
/// replacing what is there unless both are directories. Sockets are skipped (layers cannot hold
/// them). Files of one `links` group sharing an inode stay hardlinks of each other. `scratch`: the
/// source is a scratch file hoist made (see [`FileSource::scratch`]).
fn put_entry(
    dest_fs: &DestFs,
    e: &WalkEntry,
    to: &str,
    opts: &CopyOptions,
    links: Option<u64>,
    scratch: bool,
) -> Result<()> {
    let ft = e.meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink(
            fs::read_link(&e.path)?
                .into_os_string()
                .into_encoded_bytes(),
        )
    } else if ft.is_file() {
        Kind::File(FileSource {
            path: e.path.clone(),
            size: e.meta.len(),
            scratch,
            link: links
                .filter(|_| e.meta.nlink() > 1)
                .map(|g| (g, e.meta.dev(), e.meta.ino())),
        })
    } else if ft.is_socket() {
        return Ok(());
    } else {
        Kind::Special {
            file_type: rustix::fs::FileType::from_raw_mode(e.meta.mode()).as_raw_mode(),
            rdev: e.meta.rdev(),
        }
    };
    let (uid, gid) = match opts.chown {
        Some(o) => o,
        None if opts.preserve_owner => (e.meta.uid(), e.meta.gid()),
        None => (0, 0),
    };
    let mode = if ft.is_symlink() {
        0o777
    } else {
        let own = e.meta.mode() & 0o7777;
        opts.chmod
            .as_ref()
            .map_or(own, |c| c.apply(own, ft.is_dir()))
    };
    // As BuildKit's copier (not its unpacker), a copy never changes an entry's type between
    // directory and non-directory: a symlink to a directory is not a directory either.
    if !scratch {
        match (dest_fs.existing_is_dir(to), ft.is_dir()) {
            (Some(false), true) => bail!("cannot copy to non-directory: {to}"),
            (Some(true), false) => bail!("cannot replace to directory {to} with file"),
            _ => {}
        }
    }
    let node = Node {
        fixed_mtime: ft.is_dir(),
        lower: true,
        kind,
        uid,
        gid,
        mode,
        mtime: e.meta.mtime(),
        children: Default::default(),
    };
    dest_fs.put(to, node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::HashIndex;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, SourceRoot, tempfile::TempDir) {
        let ctx = tempfile::tempdir().unwrap();
        let r = ctx.path();
        fs::create_dir_all(r.join("dir/sub")).unwrap();
        fs::write(r.join("dir/a.txt"), "a").unwrap();
        fs::write(r.join("dir/sub/b.txt"), "b").unwrap();
        fs::write(r.join("one.txt"), "1").unwrap();
        fs::write(r.join("two.txt"), "2").unwrap();
        symlink("/etc/passwd", r.join("escape")).unwrap();
        let src = SourceRoot::plain(fs::canonicalize(r).unwrap());
        (ctx, src, tempfile::tempdir().unwrap())
    }

    fn cp(
        src: &SourceRoot,
        root: &Path,
        srcs: &[&str],
        dest: &str,
        opts: &CopyOptions,
    ) -> Result<()> {
        let mut all = Vec::new();
        for s in srcs {
            all.extend(resolve_sources(src, s)?);
        }
        let d = DestFs::new(Vec::new(), root.to_path_buf());
        copy_into(src, &all, &d, dest, opts)
    }

    #[test]
    fn directory_contents_not_directory() {
        let (_c, src, dst) = setup();
        cp(&src, dst.path(), &["dir"], "/app", &CopyOptions::default()).unwrap();
        assert_eq!(
            fs::read_to_string(dst.path().join("app/a.txt")).unwrap(),
            "a"
        );
        assert!(dst.path().join("app/sub/b.txt").exists());
        assert!(!dst.path().join("app/dir").exists());
    }

    #[test]
    fn trailing_slash_rules() {
        let (_c, src, dst) = setup();
        cp(
            &src,
            dst.path(),
            &["one.txt"],
            "/x",
            &CopyOptions::default(),
        )
        .unwrap();
        assert!(dst.path().join("x").is_file());
        cp(
            &src,
            dst.path(),
            &["one.txt"],
            "/y/",
            &CopyOptions::default(),
        )
        .unwrap();
        assert!(dst.path().join("y/one.txt").is_file());
        // Several sources onto a name that is not a directory: each in turn, the last one stays.
        cp(
            &src,
            dst.path(),
            &["one.txt", "two.txt"],
            "/z",
            &CopyOptions::default(),
        )
        .unwrap();
        assert_eq!(fs::read_to_string(dst.path().join("z")).unwrap(), "2");
        cp(&src, dst.path(), &["*.txt"], "/w/", &CopyOptions::default()).unwrap();
        assert!(dst.path().join("w/one.txt").is_file() && dst.path().join("w/two.txt").is_file());
    }

    #[test]
    fn missing_source_message() {
        let (_c, src, _d) = setup();
        let e = resolve_sources(&src, "./nope/../missing").unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("failed to calculate checksum of ref ")
                && e.ends_with(": \"/missing\": not found"),
            "{e}"
        );
        // A wildcard may match nothing, but the directory before it must exist.
        assert_eq!(resolve_sources(&src, "*.md").unwrap(), []);
        assert_eq!(resolve_sources(&src, "dir/*.md").unwrap(), []);
        assert_eq!(resolve_sources(&src, "one.txt/*").unwrap(), []);
        let e = resolve_sources(&src, "nodir/sub/*.txt").unwrap_err();
        assert_eq!(e.to_string(), "lstat /nodir/sub: no such file or directory");
        let m = resolve_sources(&src, "d*/s*/*.txt").unwrap();
        assert_eq!(m[0].rel, "dir/sub/b.txt");
        // After a wildcard, a symlink to a directory leads nowhere (BuildKit walks the tree).
        symlink("dir", src.root.join("link")).unwrap();
        assert_eq!(resolve_sources(&src, "l*/a.txt").unwrap(), []);
        assert_eq!(resolve_sources(&src, "l*").unwrap()[0].rel, "link");
        assert_eq!(
            resolve_sources(&src, "link/*.txt").unwrap()[0].rel,
            "link/a.txt"
        );
    }

    #[test]
    fn a_later_source_moves_a_copied_directory_mtime() {
        let (c, src, _d) = setup();
        let t = filetime::FileTime::from_unix_time(1_000, 0);
        filetime::set_file_mtime(c.path().join("dir"), t).unwrap();
        let mtime_of = |srcs: &[&str]| {
            let mut all = Vec::new();
            for s in srcs {
                all.extend(resolve_sources(&src, s).unwrap());
            }
            let d = DestFs::plan(Vec::new(), std::env::temp_dir());
            plan_copy(&src, &all, &d, "/mix", &CopyOptions::default(), None).unwrap();
            let tree = d.tree.borrow();
            let Found::Node(n) = tree.find("/mix") else {
                panic!("no /mix")
            };
            (n.mode, n.mtime, tree.now)
        };
        // The directory a directory's content lands in: 0755, the source's mtime.
        assert_eq!(mtime_of(&["dir"]).0, 0o755);
        assert_eq!(mtime_of(&["dir"]).1, 1_000);
        // A file added by the next source makes it the build's time, as adding a file does.
        let (_, mtime, now) = mtime_of(&["dir", "one.txt"]);
        assert_eq!(mtime, now);
    }

    #[test]
    fn symlink_source_never_leaves_the_root() {
        let (_c, src, _d) = setup();
        // /etc/passwd is resolved inside the context, where it does not exist.
        assert!(resolve_sources(&src, "escape").is_err());
    }

    #[test]
    fn chmod_chown_exclude_parents() {
        let (_c, src, dst) = setup();
        let opts = CopyOptions {
            chown: Some((1000, 1001)),
            chmod: Some(hoist_parser::chmod::Chmod::Octal(0o640)),
            exclude: vec!["sub".into()],
            ..Default::default()
        };
        cp(&src, dst.path(), &["dir"], "/d", &opts).unwrap();
        let m = fs::metadata(dst.path().join("d/a.txt")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o640));
        assert!(!dst.path().join("d/sub").exists());
        let opts = CopyOptions {
            parents: true,
            ..Default::default()
        };
        cp(&src, dst.path(), &["dir/sub/b.txt"], "/p/", &opts).unwrap();
        assert!(dst.path().join("p/dir/sub/b.txt").is_file());
        cp(&src, dst.path(), &["./dir/./sub/b.txt"], "/q/", &opts).unwrap();
        assert!(dst.path().join("q/sub/b.txt").is_file());
    }

    #[test]
    fn digest_ignores_mtime_but_not_content() {
        let (c, src, _d) = setup();
        let idx = HashIndex::default();
        let m = resolve_sources(&src, "dir").unwrap();
        let d1 = digest_sources(&src, &m, &CopyOptions::default(), &idx, None).unwrap();
        let t = filetime::FileTime::from_unix_time(1_000_000, 0);
        filetime::set_file_mtime(c.path().join("dir/a.txt"), t).unwrap();
        let idx = HashIndex::default();
        assert_eq!(
            digest_sources(&src, &m, &CopyOptions::default(), &idx, None).unwrap(),
            d1
        );
        fs::write(c.path().join("dir/a.txt"), "changed").unwrap();
        assert_ne!(
            digest_sources(&src, &m, &CopyOptions::default(), &idx, None).unwrap(),
            d1
        );
    }

    #[test]
    fn add_unpacks_archives() {
        let (c, _src, dst) = setup();
        let tgz = c.path().join("a.tar.gz");
        {
            let f = fs::File::create(&tgz).unwrap();
            let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            let mut b = tar::Builder::new(gz);
            b.append_dir_all("inner", c.path().join("dir")).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let src = SourceRoot::plain(fs::canonicalize(c.path()).unwrap());
        let opts = CopyOptions {
            unpack_archives: true,
            ..Default::default()
        };
        cp(&src, dst.path(), &["a.tar.gz"], "/u", &opts).unwrap();
        assert_eq!(
            fs::read_to_string(dst.path().join("u/inner/sub/b.txt")).unwrap(),
            "b"
        );
    }
}
