//! A stable, date-free description of an image (`hoist debug dump-image`): its config, its history
//! and its merged filesystem (layers applied in order, whiteouts honoured). Two images that a user
//! could not tell apart dump to the same JSON, whichever tool built them; the conformance suite
//! diffs these dumps between hoist and BuildKit.
//!
//! With a base image whose layers the image starts with, files identical to the base's merged
//! filesystem and the base's history entries are left out, and base paths the image removed are
//! listed under `deleted` (topmost path only).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::store::{Image, Store};
use crate::waste::clean;
use crate::{Error, Result};

/// One path of the merged filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Permission bits incl. setuid/setgid/sticky, as four octal digits.
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The content of a small UTF-8 file, so a dump's diff shows what differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Symlink target, as stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// `major:minor` of a device node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// The smallest path of this file's hardlink group, when it has more than one name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardlink: Option<String>,
    /// Extended attributes (`SCHILY.xattr.*`), values hex-encoded.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// Inode number within the dump, to find hardlink groups; not printed.
    #[serde(skip)]
    ino: u64,
}

/// Files up to this size that are UTF-8 get their content in the dump.
const TEXT_MAX: usize = 256;

/// The merged filesystem: absolute clean path -> node.
type Tree = BTreeMap<String, Node>;

fn parent(p: &str) -> Option<&str> {
    if p == "/" {
        return None;
    }
    Some(match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    })
}

fn dir_node(ino: u64) -> Node {
    Node {
        kind: "dir",
        mode: "0755".into(),
        uid: 0,
        gid: 0,
        size: None,
        sha256: None,
        text: None,
        link: None,
        dev: None,
        hardlink: None,
        xattrs: BTreeMap::new(),
        ino,
    }
}

/// Removes `path` and everything under it (`keep_self`: only what is under it).
fn remove_tree(tree: &mut Tree, path: &str, keep_self: bool) {
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let doomed: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        tree.remove(&k);
    }
    if !keep_self {
        tree.remove(path);
    }
}

/// One tar entry, read ahead so a layer's whiteouts can be applied before its additions.
enum Change {
    Whiteout(String),
    Opaque(String),
    Put(String, Node),
    Link(String, String),
}

fn io_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        context: what.to_string(),
        error,
    }
}

/// Reads a layer tar into changes, hashing file contents.
fn read_layer(r: impl Read, what: &str, next_ino: &mut u64) -> Result<Vec<Change>> {
    let err = io_err(what);
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(r);
    for e in ar.entries().map_err(&err)? {
        let mut e = e.map_err(&err)?;
        let path = clean(&String::from_utf8_lossy(&e.path_bytes()));
        let (dir, name) = match path.rsplit_once('/') {
            Some(("", n)) => ("/", n),
            Some((d, n)) => (d, n),
            None => ("/", path.as_str()),
        };
        if name == ".wh..wh..opq" {
            out.push(Change::Opaque(dir.to_string()));
            continue;
        }
        if let Some(target) = name.strip_prefix(".wh.") {
            out.push(Change::Whiteout(clean(&format!("{dir}/{target}"))));
            continue;
        }
        let h = e.header().clone();
        let kind = h.entry_type();
        if kind.is_hard_link() {
            let target = e
                .link_name_bytes()
                .map(|b| clean(&String::from_utf8_lossy(&b)))
                .unwrap_or_default();
            out.push(Change::Link(path, target));
            continue;
        }
        let mut uid = h.uid().map_err(&err)?;
        let mut gid = h.gid().map_err(&err)?;
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().map_err(&err)? {
            for ext in exts {
                let ext = ext.map_err(&err)?;
                let key = ext.key().unwrap_or_default();
                if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
                    if x != "trusted.overlay.opaque" && x != "user.overlay.opaque" {
                        xattrs.insert(x.to_string(), hex::encode(ext.value_bytes()));
                    }
                } else if key == "uid" {
                    uid = ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(uid);
                } else if key == "gid" {
                    gid = ext.value().ok().and_then(|v| v.parse().ok()).unwrap_or(gid);
                }
            }
        }
        *next_ino += 1;
        let mut node = Node {
            kind: "file",
            mode: format!("{:04o}", h.mode().map_err(&err)? & 0o7777),
            uid,
            gid,
            size: None,
            sha256: None,
            text: None,
            link: None,
            dev: None,
            hardlink: None,
            xattrs,
            ino: *next_ino,
        };
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                let mut hasher = Sha256::new();
                let mut head = Vec::new();
                (&mut e)
                    .take(TEXT_MAX as u64 + 1)
                    .read_to_end(&mut head)
                    .map_err(&err)?;
                hasher.update(&head);
                let n = head.len() as u64 + std::io::copy(&mut e, &mut hasher).map_err(&err)?;
                node.size = Some(n);
                node.sha256 = Some(hex::encode(hasher.finalize()));
                if head.len() <= TEXT_MAX {
                    node.text = String::from_utf8(head).ok();
                }
            }
            T::Directory => node.kind = "dir",
            T::Symlink => {
                node.kind = "symlink";
                node.link = e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
            }
            T::Char | T::Block => {
                node.kind = if kind == T::Char { "char" } else { "block" };
                node.dev = Some(format!(
                    "{}:{}",
                    h.device_major().map_err(&err)?.unwrap_or(0),
                    h.device_minor().map_err(&err)?.unwrap_or(0)
                ));
            }
            T::Fifo => node.kind = "fifo",
            // PAX/GNU headers are consumed by the tar crate; anything else is not a file.
            _ => continue,
        }
        out.push(Change::Put(path, node));
    }
    Ok(out)
}

/// Applies one layer's changes: whiteouts against the layers below first, then its entries.
fn apply(tree: &mut Tree, changes: Vec<Change>, next_ino: &mut u64, what: &str) -> Result<()> {
    for c in &changes {
        match c {
            Change::Whiteout(p) => remove_tree(tree, p, false),
            Change::Opaque(d) => remove_tree(tree, d, true),
            _ => {}
        }
    }
    for c in changes {
        let (path, node) = match c {
            Change::Put(p, n) => (p, n),
            Change::Link(p, target) => {
                let node = tree.get(&target).cloned().ok_or_else(|| Error::Invalid {
                    what: what.to_string(),
                    why: format!("hardlink {p} to {target}, which does not exist"),
                })?;
                (p, node)
            }
            _ => continue,
        };
        if path == "/" {
            if node.kind == "dir" {
                tree.insert(path, node);
            }
            continue;
        }
        // Missing parents are created as tar extraction does: plain root-owned directories.
        let mut missing = Vec::new();
        let mut p = parent(&path);
        while let Some(d) = p {
            if tree.get(d).is_some_and(|n| n.kind == "dir") {
                break;
            }
            missing.push(d.to_string());
            p = parent(d);
        }
        for d in missing.into_iter().rev() {
            remove_tree(tree, &d, false);
            *next_ino += 1;
            tree.insert(d, dir_node(*next_ino));
        }
        let replaces_dir = tree.get(&path).is_some_and(|n| n.kind == "dir");
        if replaces_dir && node.kind != "dir" {
            remove_tree(tree, &path, false);
        }
        tree.insert(path, node);
    }
    Ok(())
}

/// Marks every member of a hardlink group with the group's smallest path.
fn mark_hardlinks(tree: &mut Tree) {
    let mut groups: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (p, n) in tree.iter() {
        if n.kind == "file" {
            groups.entry(n.ino).or_default().push(p.clone());
        }
    }
    for paths in groups.values().filter(|g| g.len() > 1) {
        for p in paths {
            if let Some(n) = tree.get_mut(p) {
                n.hardlink = Some(paths[0].clone());
            }
        }
    }
}

/// The merged filesystem of `image` (all layers applied, whiteouts honoured, hardlink groups
/// marked): absolute clean path -> node. `image diff` compares two of these.
pub fn merged_tree(store: &Store, image: &Image) -> Result<BTreeMap<String, Node>> {
    let mut tree = Tree::new();
    let mut next_ino = 0;
    tree.insert("/".into(), dir_node(0));
    for (i, diff_id) in image.config.rootfs.diff_ids.iter().enumerate() {
        let what = format!("layer {i} ({diff_id})");
        let changes = read_layer(open_layer(store, diff_id)?, &what, &mut next_ino)?;
        apply(&mut tree, changes, &mut next_ino, &what)?;
    }
    mark_hardlinks(&mut tree);
    Ok(tree)
}

/// The history entries, without dates or authors' clocks.
fn history(image: &Image) -> Vec<Value> {
    image
        .config
        .history
        .iter()
        .map(|h| {
            let mut m = Map::new();
            if let Some(c) = &h.created_by {
                m.insert("created_by".into(), c.clone().into());
            }
            if let Some(c) = &h.comment {
                m.insert("comment".into(), c.clone().into());
            }
            if h.empty_layer {
                m.insert("empty_layer".into(), true.into());
            }
            Value::Object(m)
        })
        .collect()
}

/// The image-level fields (`architecture`, `os`, `variant`, `author`, unknown extras) and Docker's
/// `config`, as stored.
fn image_fields(image: &Image) -> Result<(Value, Value)> {
    let mut v = serde_json::to_value(&image.config).map_err(|e| Error::Other(e.to_string()))?;
    let obj = v.as_object_mut().expect("config is an object");
    let config = obj.remove("config").unwrap_or(Value::Null);
    for k in ["created", "history", "rootfs"] {
        obj.remove(k);
    }
    Ok((v, config))
}

/// Builds the dump of `image`, leaving out what it shares with `base` when `base`'s layers are the
/// first layers of `image` (`base_layers` in the output says how many were left out, 0 if none),
/// and the paths in `exclude` with everything under them (files whose content is a build's date,
/// such as logs).
pub fn dump(
    store: &Store,
    image: &Image,
    base: Option<&Image>,
    exclude: &[String],
) -> Result<Value> {
    let layers = image.config.rootfs.diff_ids.clone();
    let base_layers = base
        .map(|b| &b.config.rootfs.diff_ids)
        .filter(|b| layers.starts_with(b))
        .map_or(0, |b| b.len());
    let mut tree = Tree::new();
    let mut next_ino = 0;
    tree.insert("/".into(), dir_node(0));
    let mut base_tree = None;
    for (i, diff_id) in layers.iter().enumerate() {
        if i == base_layers && base_layers > 0 {
            base_tree = Some(tree.clone());
        }
        let what = format!("layer {i} ({diff_id})");
        let changes = read_layer(open_layer(store, diff_id)?, &what, &mut next_ino)?;
        apply(&mut tree, changes, &mut next_ino, &what)?;
    }
    if base_layers > 0 && base_layers == layers.len() {
        base_tree = Some(tree.clone());
    }
    let mut hist = history(image);
    if let Some(b) = base.filter(|_| base_layers > 0) {
        let bh = history(b);
        if hist.starts_with(&bh) {
            hist.drain(..bh.len());
        }
    }
    mark_hardlinks(&mut tree);
    let mut deleted = BTreeSet::new();
    if let Some(mut bt) = base_tree {
        mark_hardlinks(&mut bt);
        for p in bt.keys() {
            if !tree.contains_key(p) && parent(p).is_none_or(|d| tree.contains_key(d)) {
                deleted.insert(p.clone());
            }
        }
        tree.retain(|p, n| bt.get(p).is_none_or(|b| !same(b, n)));
    }
    let exclude: Vec<String> = exclude.iter().map(|e| clean(e)).collect();
    let excluded = |p: &str| {
        exclude
            .iter()
            .any(|e| p == e || e == "/" || p.starts_with(&format!("{e}/")))
    };
    tree.retain(|p, _| !excluded(p));
    deleted.retain(|p| !excluded(p));
    let (top, config) = image_fields(image)?;
    let mut out = Map::new();
    out.insert("image".into(), top);
    out.insert("config".into(), config);
    out.insert("history".into(), Value::Array(hist));
    out.insert("base_layers".into(), base_layers.into());
    out.insert("layers".into(), (layers.len() - base_layers).into());
    let files = tree
        .into_iter()
        .map(|(p, n)| {
            Ok((
                p,
                serde_json::to_value(n).map_err(|e| Error::Other(e.to_string()))?,
            ))
        })
        .collect::<Result<Map<_, _>>>()?;
    out.insert("files".into(), Value::Object(files));
    out.insert(
        "deleted".into(),
        Value::Array(deleted.into_iter().map(Value::from).collect()),
    );
    Ok(Value::Object(out))
}

/// A layer's tar. An uncompressed blob is read as is: hashing it again to verify it would double
/// the cost of a dump, which only reads.
fn open_layer(store: &Store, diff_id: &crate::Digest) -> Result<Box<dyn Read>> {
    if store
        .layer_blob(diff_id, crate::Compression::None)
        .is_some()
    {
        let path = store.blob_path(diff_id);
        let f = std::fs::File::open(&path).map_err(|e| Error::Io {
            context: format!("opening {}", path.display()),
            error: e,
        })?;
        return Ok(Box::new(std::io::BufReader::with_capacity(1 << 16, f)));
    }
    store.open_layer(diff_id)
}

/// Equal as a user sees them (inode numbers aside).
fn same(a: &Node, b: &Node) -> bool {
    Node {
        ino: 0,
        ..a.clone()
    } == Node {
        ino: 0,
        ..b.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn put(
        b: &mut tar::Builder<Vec<u8>>,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str, kind: tar::EntryType) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        b.append_link(&mut h, path, target).unwrap();
    }

    fn merged(layers: &[Vec<u8>]) -> Tree {
        let mut tree = Tree::new();
        tree.insert("/".into(), dir_node(0));
        let mut ino = 0;
        for l in layers {
            let c = read_layer(&l[..], "test", &mut ino).unwrap();
            apply(&mut tree, c, &mut ino, "test").unwrap();
        }
        mark_hardlinks(&mut tree);
        tree
    }

    #[test]
    fn whiteouts_apply_to_lower_layers_only() {
        use tar::EntryType as T;
        let l1 = layer(|b| {
            put(b, "d/", T::Directory, 0o755, b"");
            put(b, "d/old", T::Regular, 0o644, b"x");
            put(b, "gone", T::Regular, 0o644, b"x");
        });
        let l2 = layer(|b| {
            put(b, "d/new", T::Regular, 0o600, b"yz");
            put(b, "d/.wh..wh..opq", T::Regular, 0, b"");
            put(b, ".wh.gone", T::Regular, 0, b"");
        });
        let t = merged(&[l1, l2]);
        let keys: Vec<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(keys, ["/", "/d", "/d/new"]);
        let n = &t["/d/new"];
        assert_eq!((n.mode.as_str(), n.size), ("0600", Some(2)));
        // printf yz | sha256sum
        assert_eq!(
            n.sha256.as_deref(),
            Some("68d617d6d2ee5715af77d9795566cfaba9a43a33d14cbbc95831c507c935bad1")
        );
    }

    #[test]
    fn hardlinks_are_grouped_and_parents_implied() {
        use tar::EntryType as T;
        let l = layer(|b| {
            put(b, "a/b/f", T::Regular, 0o4755, b"data");
            link(b, "a/g", "a/b/f", T::Link);
            link(b, "s", "a/b/f", T::Symlink);
        });
        let t = merged(&[l]);
        assert_eq!(t["/a"].kind, "dir");
        assert_eq!(t["/a/b/f"].hardlink.as_deref(), Some("/a/b/f"));
        assert_eq!(t["/a/g"].hardlink.as_deref(), Some("/a/b/f"));
        assert_eq!(t["/a/g"].mode, "4755");
        assert_eq!(t["/s"].link.as_deref(), Some("a/b/f"));
        assert_eq!(t["/s"].hardlink, None);
    }

    #[test]
    fn a_file_replacing_a_directory_removes_its_contents() {
        use tar::EntryType as T;
        let l1 = layer(|b| put(b, "d/f", T::Regular, 0o644, b"x"));
        let l2 = layer(|b| put(b, "d", T::Regular, 0o644, b"y"));
        let t = merged(&[l1, l2]);
        assert!(!t.contains_key("/d/f"));
        assert_eq!(t["/d"].kind, "file");
    }
}
