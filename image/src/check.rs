//! `hoist system check [--repair]`: the store's `git fsck`.
//!
//! What is verified, in one pass over the store:
//! - every blob's content against the digest it is named by;
//! - every layer blob (the uncompressed one, the compressed forms `layerdb/` records, and the ones
//!   manifests name) decompressed against its diff_id, while the same stream is compared, entry by
//!   entry, with the layer's unpacked tree (`unpacked/<diff_id>/`): type, permission bits, size and
//!   content of regular files, symlink targets, hardlinks, whiteouts and opaque markers, and no entry
//!   the layer does not have. That costs one read of each layer and its tree, and nothing has to be
//!   recorded when a layer is unpacked;
//! - every index entry (tag or untagged image): its manifest, config and layer blobs present and
//!   sound, as many layers as diff_ids.
//!
//! `--repair` (under the store's exclusive GC lock: refused while a build, pull, load or container
//! holds a lease) deletes corrupt blobs, wrong `layerdb/` records and untrusted unpacked trees (they
//! are made again from their blob when next needed), and removes the images that lost a blob, naming
//! them, so that they can be pulled or built again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::ImageManifest;

use crate::layer::{self, Compression, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::{Digest, HashingReader, ImageConfig, IoContext, Result, Store};

/// Mismatches listed per unpacked tree before the rest are counted only.
const TREE_DETAILS: usize = 5;

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is damaged: `blob sha256:…`, `image NAME`, `unpacked layer sha256:…`, `layer record …`.
    pub subject: String,
    pub why: String,
}

/// What a check found and (with repair) did.
#[derive(Debug, Default)]
pub struct Report {
    pub blobs: usize,
    pub images: usize,
    pub layers: usize,
    pub unpacked: usize,
    pub problems: Vec<Problem>,
    /// What `--repair` removed, one line each.
    pub repaired: Vec<String>,
    /// Image names (or manifest digests of untagged images) `--repair` removed.
    pub images_removed: Vec<String>,
}

impl Report {
    /// Whether the store was found sound.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the store; with `repair`, removes what is broken (see the module docs). Fails when repair
/// cannot take the store's exclusive lock.
pub fn check(store: &Store, repair: bool) -> Result<Report> {
    let _exclusive = if repair {
        Some(store.try_exclusive()?.ok_or_else(|| {
            crate::Error::Other(
                "the store is in use (a build, pull, load or running container holds it): \
                 try --repair again when it is idle"
                    .into(),
            )
        })?)
    } else {
        None
    };
    let mut c = Checker {
        store,
        report: Report::default(),
        bad_blobs: HashSet::new(),
        layer_ok: HashMap::new(),
        remove_blobs: BTreeSet::new(),
        remove_records: BTreeSet::new(),
        remove_unpacked: BTreeSet::new(),
    };
    c.blobs()?;
    let images = c.images()?;
    c.layers(&images)?;
    c.judge_images(&images);
    if repair {
        c.repair(&images)?;
    }
    Ok(c.report)
}

/// An index entry as read.
struct Entry {
    manifest: Digest,
    /// Names pointing at it (empty: untagged).
    names: Vec<String>,
    /// The manifest's config and (layer blob, diff_id) pairs, when readable.
    parsed: std::result::Result<(Digest, Vec<(Digest, Digest)>), String>,
}

impl Entry {
    fn label(&self) -> String {
        if self.names.is_empty() {
            format!("image {} (untagged)", self.manifest)
        } else {
            format!("image {}", self.names.join(", "))
        }
    }
}

struct Checker<'a> {
    store: &'a Store,
    report: Report,
    /// Blobs whose content does not match their name, or that cannot be read.
    bad_blobs: HashSet<Digest>,
    /// (blob, diff_id) -> whether the blob decompresses to that diff_id.
    layer_ok: HashMap<(Digest, Digest), bool>,
    remove_blobs: BTreeSet<Digest>,
    remove_records: BTreeSet<PathBuf>,
    remove_unpacked: BTreeSet<PathBuf>,
}

impl Checker<'_> {
    fn problem(&mut self, subject: impl Into<String>, why: impl Into<String>) {
        self.report.problems.push(Problem {
            subject: subject.into(),
            why: why.into(),
        });
    }

    /// Every blob against its name.
    fn blobs(&mut self) -> Result<()> {
        let dir = self.store.root().join("blobs/sha256");
        let mut names: Vec<_> = fs::read_dir(&dir)
            .ctx(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .collect();
        names.sort_by_key(|e| e.file_name());
        for ent in names {
            let name = ent.file_name().to_string_lossy().into_owned();
            self.report.blobs += 1;
            let Ok(d) = format!("sha256:{name}").parse::<Digest>() else {
                self.problem(
                    format!("blob file {}", ent.path().display()),
                    "not named by a sha256 digest",
                );
                continue;
            };
            let hashed = fs::File::open(ent.path()).and_then(|f| {
                let mut r = HashingReader::new(io::BufReader::with_capacity(1 << 20, f));
                io::copy(&mut r, &mut io::sink())?;
                Ok(r.finish().1)
            });
            match hashed {
                Ok(actual) if actual == d => {}
                Ok(actual) => {
                    self.problem(
                        format!("blob {d}"),
                        format!("content hashes to {actual} (corrupt)"),
                    );
                    self.bad_blobs.insert(d.clone());
                    self.remove_blobs.insert(d);
                }
                Err(e) => {
                    self.problem(format!("blob {d}"), format!("unreadable: {e}"));
                    self.bad_blobs.insert(d.clone());
                    self.remove_blobs.insert(d);
                }
            }
        }
        Ok(())
    }

    /// A sound JSON blob, or why not.
    fn json_blob<T: serde::de::DeserializeOwned>(
        &self,
        d: &Digest,
    ) -> std::result::Result<T, String> {
        if self.bad_blobs.contains(d) {
            return Err(format!("blob {d} is corrupt"));
        }
        if !self.store.has_blob(d) {
            return Err(format!("blob {d} is missing"));
        }
        let bytes = fs::read(self.store.blob_path(d)).map_err(|e| format!("blob {d}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("blob {d} is not valid JSON: {e}"))
    }

    /// Reads every index entry (grouping names by manifest).
    fn images(&mut self) -> Result<Vec<Entry>> {
        let mut by_manifest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for (d, name) in self.store.index_entries()? {
            // An index is checked through the platform images it holds.
            if self.store.is_index(&d) {
                for (child, have) in self.store.index_children(&d)? {
                    if have && child.is_platform_image() {
                        by_manifest
                            .entry(child.digest)
                            .or_default()
                            .extend(name.clone());
                    }
                }
                continue;
            }
            let names = by_manifest.entry(d).or_default();
            names.extend(name);
        }
        let mut out = Vec::new();
        for (manifest, names) in by_manifest {
            let parsed = self.json_blob::<ImageManifest>(&manifest).and_then(|m| {
                let config = Digest::from_oci(m.config().digest()).map_err(|e| e.to_string())?;
                let cfg: ImageConfig = self.json_blob(&config)?;
                let blobs = m.layers();
                let ids = &cfg.rootfs.diff_ids;
                if blobs.len() != ids.len() {
                    return Err(format!(
                        "{} layers in the manifest but {} diff_ids in the config",
                        blobs.len(),
                        ids.len()
                    ));
                }
                let mut layers = Vec::new();
                for (b, id) in blobs.iter().zip(ids) {
                    layers.push((
                        Digest::from_oci(b.digest()).map_err(|e| e.to_string())?,
                        id.clone(),
                    ));
                }
                Ok((config, layers))
            });
            out.push(Entry {
                manifest,
                names,
                parsed,
            });
        }
        self.report.images = out.len();
        Ok(out)
    }

    /// Every layer some image or record names: its blobs against the diff_id, its unpacked tree
    /// against the layer. Leftover temp directories of interrupted unpacks (`.tmp-*`, `.stage-*`)
    /// are not problems: GC removes them.
    fn layers(&mut self, images: &[Entry]) -> Result<()> {
        // diff_id -> blobs claimed to hold it (with where the claim comes from).
        let mut claims: BTreeMap<Digest, BTreeMap<Digest, Option<PathBuf>>> = BTreeMap::new();
        for e in images {
            if let Ok((_, layers)) = &e.parsed {
                for (blob, id) in layers {
                    claims
                        .entry(id.clone())
                        .or_default()
                        .entry(blob.clone())
                        .or_insert(None);
                }
            }
        }
        let layerdb = self.store.root().join("layerdb");
        if let Ok(rd) = fs::read_dir(&layerdb) {
            for ent in rd.flatten() {
                let Ok(id) =
                    format!("sha256:{}", ent.file_name().to_string_lossy()).parse::<Digest>()
                else {
                    continue;
                };
                let by = claims.entry(id.clone()).or_default();
                for c in [Compression::Gzip, Compression::Zstd] {
                    let rec = ent.path().join(c.name());
                    let Ok(text) = fs::read_to_string(&rec) else {
                        continue;
                    };
                    match text.trim().parse::<Digest>() {
                        Ok(b) if self.store.has_blob(&b) => {
                            by.insert(b, Some(rec));
                        }
                        Ok(b) => {
                            self.problem(
                                format!("layer record {}", rec.display()),
                                format!("names blob {b}, which is missing"),
                            );
                            self.remove_records.insert(rec);
                        }
                        Err(_) => {
                            self.problem(
                                format!("layer record {}", rec.display()),
                                format!("does not hold a digest: {:?}", text.trim()),
                            );
                            self.remove_records.insert(rec);
                        }
                    }
                }
            }
        }
        let unpacked_root = self.store.root().join("unpacked");
        if let Ok(rd) = fs::read_dir(&unpacked_root) {
            for ent in rd.flatten() {
                if let Ok(id) =
                    format!("sha256:{}", ent.file_name().to_string_lossy()).parse::<Digest>()
                {
                    claims.entry(id).or_default();
                }
            }
        }
        for (id, blobs) in claims {
            self.report.layers += 1;
            let mut candidates: Vec<(Digest, Option<PathBuf>)> = blobs.into_iter().collect();
            if self.store.has_blob(&id) && !candidates.iter().any(|(b, _)| *b == id) {
                candidates.insert(0, (id.clone(), None));
            }
            let tree = unpacked_root.join(id.hex());
            let mut tree_verdict: Option<std::result::Result<(), Vec<String>>> = None;
            for (blob, record) in candidates {
                if !self.store.has_blob(&blob) {
                    // A manifest's missing layer blob is reported with its image.
                    continue;
                }
                if self.bad_blobs.contains(&blob) {
                    self.layer_ok.insert((blob.clone(), id.clone()), false);
                    if let Some(rec) = record {
                        self.remove_records.insert(rec);
                    }
                    continue;
                }
                let compare = tree_verdict.is_none() && tree.is_dir();
                let (actual, mismatches) = self.read_layer(&blob, compare.then_some(&tree))?;
                let ok = actual.as_ref() == Ok(&id);
                self.layer_ok.insert((blob.clone(), id.clone()), ok);
                if !ok {
                    let why = match actual {
                        Ok(a) => format!("holds a layer whose diff_id is {a}, not {id}"),
                        Err(e) => format!("cannot be read as the layer {id}: {e}"),
                    };
                    match &record {
                        Some(rec) => {
                            self.problem(format!("layer record {}", rec.display()), why);
                            self.remove_records.insert(rec.clone());
                        }
                        None => self.problem(format!("layer blob {blob}"), why),
                    }
                    continue;
                }
                if compare {
                    tree_verdict = Some(if mismatches.is_empty() {
                        Ok(())
                    } else {
                        Err(mismatches)
                    });
                }
            }
            if tree.is_dir() {
                self.report.unpacked += 1;
                match tree_verdict {
                    Some(Ok(())) => {}
                    Some(Err(m)) => {
                        self.problem(
                            format!("unpacked layer {id}"),
                            format!("differs from the layer: {}", m.join("; ")),
                        );
                        self.remove_unpacked.insert(tree);
                    }
                    None => {
                        self.problem(
                            format!("unpacked layer {id}"),
                            "no sound blob holds this layer, so the tree cannot be trusted",
                        );
                        self.remove_unpacked.insert(tree);
                    }
                }
            }
        }
        Ok(())
    }

    /// Decompresses `blob`, hashing the tar (its diff_id) and comparing it with `tree` when given.
    fn read_layer(
        &self,
        blob: &Digest,
        tree: Option<&PathBuf>,
    ) -> Result<(std::result::Result<Digest, String>, Vec<String>)> {
        let file =
            fs::File::open(self.store.blob_path(blob)).ctx(|| format!("opening blob {blob}"))?;
        let r = match layer::decompress(file) {
            Ok(r) => r,
            Err(e) => return Ok((Err(e.to_string()), Vec::new())),
        };
        let mut hashing = HashingReader::new(r);
        let mismatches = match tree {
            Some(t) => match compare_tree(&mut hashing, t) {
                Ok(m) => m,
                Err(e) => vec![format!("the layer does not read as a tar: {e}")],
            },
            None => Vec::new(),
        };
        if let Err(e) = io::copy(&mut hashing, &mut io::sink()) {
            return Ok((Err(e.to_string()), mismatches));
        }
        Ok((Ok(hashing.finish().1), mismatches))
    }

    /// An image is broken when a blob it needs is missing or corrupt or a layer blob does not hold
    /// its diff_id.
    fn judge_images(&mut self, images: &[Entry]) {
        for e in images {
            let why = match &e.parsed {
                Err(why) => Some(why.clone()),
                Ok((_, layers)) => layers.iter().enumerate().find_map(|(i, (blob, id))| {
                    if !self.store.has_blob(blob) {
                        Some(format!("layer {} blob {blob} is missing", i + 1))
                    } else if self.bad_blobs.contains(blob) {
                        Some(format!("layer {} blob {blob} is corrupt", i + 1))
                    } else if self.layer_ok.get(&(blob.clone(), id.clone())) != Some(&true) {
                        Some(format!(
                            "layer {} blob {blob} does not hold its diff_id {id}",
                            i + 1
                        ))
                    } else {
                        None
                    }
                }),
            };
            if let Some(why) = why {
                self.problem(e.label(), why);
            }
        }
    }

    fn repair(&mut self, images: &[Entry]) -> Result<()> {
        let broken: Vec<&Entry> = images
            .iter()
            .filter(|e| self.report.problems.iter().any(|p| p.subject == e.label()))
            .collect();
        for e in broken {
            self.store.drop_index_entries(&e.manifest)?;
            let what = if e.names.is_empty() {
                e.manifest.to_string()
            } else {
                e.names.join(", ")
            };
            self.report
                .repaired
                .push(format!("removed {}: pull or build it again", e.label()));
            self.report.images_removed.push(what);
        }
        for d in std::mem::take(&mut self.remove_blobs) {
            let p = self.store.blob_path(&d);
            fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
            self.report
                .repaired
                .push(format!("removed corrupt blob {d}"));
        }
        for rec in std::mem::take(&mut self.remove_records) {
            if fs::remove_file(&rec).is_ok() {
                self.report
                    .repaired
                    .push(format!("removed layer record {}", rec.display()));
            }
        }
        for tree in std::mem::take(&mut self.remove_unpacked) {
            fs::remove_dir_all(&tree).ctx(|| format!("removing {}", tree.display()))?;
            self.report.repaired.push(format!(
                "removed unpacked layer {} (unpacked again from its blob when needed)",
                tree.display()
            ));
        }
        Ok(())
    }
}

/// A layer path relative to the tree, normalised (`./a/b/` -> `a/b`); None for the root or for
/// paths leaving it.
fn rel_path(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Compares a layer tar, entry by entry, with its unpacked tree; returns the differences (at most
/// [`TREE_DETAILS`] described, then a count).
fn compare_tree(r: &mut dyn Read, root: &Path) -> io::Result<Vec<String>> {
    use tar::EntryType;
    // Later entries for the same path replace earlier ones, as when the layer was applied.
    let mut verdicts: BTreeMap<PathBuf, Option<String>> = BTreeMap::new();
    let mut opaque: BTreeSet<PathBuf> = BTreeSet::new();
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
        ) {
            continue;
        }
        let Some(rel) = rel_path(&entry.path()?) else {
            continue;
        };
        let name = rel.file_name().unwrap_or_default().to_string_lossy();
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == WHITEOUT_OPAQUE {
            opaque.insert(parent);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let target = parent.join(hidden);
            let v = match fs::symlink_metadata(root.join(&target)) {
                Ok(m) if m.file_type().is_char_device() && m.rdev() == 0 => None,
                Ok(_) => Some("is not a whiteout device".to_string()),
                Err(_) => Some("whiteout is missing".to_string()),
            };
            verdicts.insert(target, v);
            continue;
        }
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path);
        let mode = entry.header().mode().unwrap_or(0) & 0o7777;
        let v = match (kind, meta) {
            (_, Err(_)) => Some("is missing".to_string()),
            (EntryType::Regular | EntryType::Continuous, Ok(m)) => {
                if !m.file_type().is_file() {
                    Some("is not a regular file".into())
                } else if m.len() != entry.size() {
                    Some(format!("is {} bytes, not {}", m.len(), entry.size()))
                } else if m.mode() & 0o7777 != mode {
                    Some(format!("has mode {:o}, not {mode:o}", m.mode() & 0o7777))
                } else if !same_content(&mut entry, &path)? {
                    Some("content differs".into())
                } else {
                    None
                }
            }
            (EntryType::Directory, Ok(m)) => {
                if !m.is_dir() {
                    Some("is not a directory".into())
                } else if m.mode() & 0o7777 != mode {
                    Some(format!("has mode {:o}, not {mode:o}", m.mode() & 0o7777))
                } else {
                    None
                }
            }
            (EntryType::Symlink, Ok(m)) => {
                let want = entry.link_name()?.map(|l| l.into_owned());
                match (m.file_type().is_symlink(), fs::read_link(&path).ok(), want) {
                    (true, Some(have), Some(want)) if have == want => None,
                    _ => Some("symlink target differs".into()),
                }
            }
            (EntryType::Link, Ok(m)) => {
                let target = entry.link_name()?.and_then(|l| rel_path(&l));
                match target.map(|t| fs::symlink_metadata(root.join(t))) {
                    Some(Ok(t)) if t.ino() == m.ino() && t.dev() == m.dev() => None,
                    _ => Some("hardlink does not share its target's inode".into()),
                }
            }
            (EntryType::Char, Ok(m)) if m.file_type().is_char_device() => None,
            (EntryType::Block, Ok(m)) if m.file_type().is_block_device() => None,
            (EntryType::Fifo, Ok(m)) if m.file_type().is_fifo() => None,
            (EntryType::Char | EntryType::Block | EntryType::Fifo, Ok(_)) => {
                Some("is not the device or fifo the layer has".into())
            }
            _ => None,
        };
        verdicts.insert(rel, v);
    }
    let mut out: Vec<String> = Vec::new();
    let mut count = 0;
    let mut note = |out: &mut Vec<String>, s: String| {
        count += 1;
        if out.len() < TREE_DETAILS {
            out.push(s);
        }
    };
    for (p, v) in &verdicts {
        if let Some(why) = v {
            note(&mut out, format!("/{} {why}", p.display()));
        }
    }
    for dir in &opaque {
        if !layer::is_opaque(&root.join(dir)) {
            note(&mut out, format!("/{} is not marked opaque", dir.display()));
        }
    }
    // Entries the layer does not have (parents of layer entries are made by the unpack).
    let mut expected: HashSet<PathBuf> = verdicts.keys().cloned().collect();
    for p in verdicts.keys().chain(opaque.iter()) {
        let mut a = p.as_path();
        while let Some(parent) = a.parent() {
            if parent.as_os_str().is_empty() || !expected.insert(parent.to_path_buf()) {
                break;
            }
            a = parent;
        }
    }
    for ent in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let ent = ent.map_err(io::Error::other)?;
        let rel = ent.path().strip_prefix(root).unwrap_or(ent.path());
        if !expected.contains(rel) {
            note(&mut out, format!("/{} is not in the layer", rel.display()));
        }
    }
    if count > out.len() {
        out.push(format!("and {} more", count - out.len()));
    }
    Ok(out)
}

/// Whether the file at `path` holds exactly what `r` yields (`r` is read to its end).
fn same_content(r: &mut dyn Read, path: &Path) -> io::Result<bool> {
    let mut f = io::BufReader::with_capacity(256 * 1024, fs::File::open(path)?);
    let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(r, &mut a)?;
        let m = read_full(&mut f, &mut b[..n.max(1)])?;
        if n != m || a[..n] != b[..m] {
            io::copy(r, &mut io::sink())?;
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::ApplyMode;

    fn layer_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            b.append_data(&mut h, path, data).unwrap();
        };
        add("etc/", tar::EntryType::Directory, b"", None);
        add("etc/conf", tar::EntryType::Regular, b"first", None);
        add("etc/conf", tar::EntryType::Regular, b"second", None);
        add("etc/link", tar::EntryType::Symlink, b"", Some("conf"));
        add("etc/hard", tar::EntryType::Link, b"", Some("etc/conf"));
        add("etc/.wh.gone", tar::EntryType::Regular, b"", None);
        add("var/cache/", tar::EntryType::Directory, b"", None);
        add("var/cache/.wh..wh..opq", tar::EntryType::Regular, b"", None);
        b.into_inner().unwrap()
    }

    fn unpack(tar: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        layer::apply_layer(tar, dir.path(), ApplyMode::OverlayLower).unwrap();
        dir
    }

    #[test]
    fn an_unpacked_layer_matches_its_tar() {
        let tar = layer_tar();
        let dir = unpack(&tar);
        assert_eq!(
            compare_tree(&mut &tar[..], dir.path()).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn whiteouts_opaque_dirs_and_hardlinks_are_checked() {
        let tar = layer_tar();
        let dir = unpack(&tar);
        let root = dir.path();
        fs::remove_file(root.join("etc/gone")).unwrap();
        fs::remove_file(root.join("etc/hard")).unwrap();
        fs::write(root.join("etc/hard"), "second").unwrap();
        if layer::is_opaque(&root.join("var/cache")) {
            for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
                let _ = rustix::fs::removexattr(root.join("var/cache"), name);
            }
        }
        let found = compare_tree(&mut &tar[..], root).unwrap();
        let text = found.join("\n");
        assert!(text.contains("/etc/gone whiteout is missing"), "{text}");
        assert!(text.contains("/etc/hard hardlink does not share"), "{text}");
        assert!(text.contains("/var/cache is not marked opaque"), "{text}");
        assert_eq!(found.len(), 3, "{text}");
    }

    #[test]
    fn details_are_capped() {
        let tar = layer_tar();
        let dir = unpack(&tar);
        for i in 0..9 {
            fs::write(dir.path().join(format!("extra{i}")), "x").unwrap();
        }
        let found = compare_tree(&mut &tar[..], dir.path()).unwrap();
        assert_eq!(found.len(), TREE_DETAILS + 1);
        assert_eq!(found.last().unwrap(), "and 4 more");
    }
}
