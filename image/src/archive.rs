//! Moving images in and out of the store: `save`/`load` (OCI layout and docker-archive tars),
//! `import` (a rootfs tar or directory becomes a one-layer image) and `export` (flattened rootfs).
//!
//! `save --format docker` writes what Docker 25+ writes: an OCI layout *and* the classic
//! `manifest.json`/`repositories`, so both docker-archive and OCI readers accept it.
//! `--format oci` writes the OCI layout only.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::layer::{self, ApplyMode, LayerOptions};
use crate::oci_layout;
use crate::store::Store;
use crate::{Digest, Error, History, Image, ImageConfig, IoContext, Reference, Result, media_type};

/// Archive layout written by [`save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// OCI image layout only.
    Oci,
    /// docker-archive (`manifest.json`) combined with an OCI layout, as Docker 25+ writes.
    Docker,
}

/// Writes `images` (names or IDs) as one tar archive to `out`.
pub fn save<W: Write>(store: &Store, images: &[String], format: SaveFormat, out: W) -> Result<W> {
    save_platform(store, images, format, None, out)
}

/// [`save`] choosing among the platforms of multi-platform images: an OCI archive holds a whole
/// index unless `platform` picks one; a docker-archive holds one platform's image (`platform`,
/// default this machine's), as Docker does.
pub fn save_platform<W: Write>(
    store: &Store,
    images: &[String],
    format: SaveFormat,
    platform: Option<&crate::Platform>,
    out: W,
) -> Result<W> {
    let mut resolved: Vec<(Image, Vec<Reference>)> = Vec::new();
    for s in images {
        let mut img = store.resolve_platform(s, platform)?;
        // Only a whole index keeps `index_digest` (it is what gets written).
        if format != SaveFormat::Oci || platform.is_some() {
            img.index_digest = None;
        }
        // A name given on the command line is what gets saved; an ID saves every name.
        let names = match Reference::parse(s) {
            Ok(r) if img.names.contains(&r) => vec![r],
            _ => img.names.clone(),
        };
        match resolved
            .iter_mut()
            .find(|(i, _)| i.entry_digest() == img.entry_digest())
        {
            Some((_, n)) => {
                for x in names {
                    if !n.contains(&x) {
                        n.push(x);
                    }
                }
            }
            None => resolved.push((img, names)),
        }
    }
    let mut tar = tar::Builder::new(out);
    let mut written = std::collections::HashSet::new();
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    add_dir(&mut tar, "blobs/")?;
    add_dir(&mut tar, "blobs/sha256/")?;
    for (img, names) in &resolved {
        let mut blobs = vec![img.manifest_digest.clone(), img.config_digest.clone()];
        let layers = img.layers()?;
        blobs.extend(
            layers
                .iter()
                .map(|(_, d)| Digest::from_oci(d.digest()))
                .collect::<Result<Vec<_>>>()?,
        );
        if let Some(index) = &img.index_digest {
            blobs = crate::index_archive::index_blobs(store, index)?;
        }
        let top = img.entry_digest();
        for b in blobs {
            if written.insert(b.clone()) {
                let size = store.blob_size(&b)?;
                let mut h = header(size, 0o444);
                tar.append_data(&mut h, oci_layout::blob_name(&b), store.open_blob(&b)?)
                    .ctx(|| format!("writing blob {b}"))?;
            }
        }
        let manifest_mt = store
            .document_media_type(top)
            .unwrap_or_else(|| media_type::MANIFEST.into());
        let entry = |name: Option<&Reference>| {
            let mut e = json!({
                "mediaType": manifest_mt,
                "digest": top,
                "size": store.blob_size(top).unwrap_or(0),
            });
            if let Some(n) = name {
                e["annotations"] = json!({
                    "io.containerd.image.name": n.to_string(),
                    crate::store::REF_NAME: n.tag.clone().unwrap_or_else(|| "latest".into()),
                });
            }
            e
        };
        if names.is_empty() {
            index.push(entry(None));
        }
        for n in names {
            index.push(entry(Some(n)));
            repositories
                .entry(n.familiar_repository())
                .or_default()
                .insert(
                    n.tag.clone().unwrap_or_else(|| "latest".into()),
                    img.config_digest.hex().to_string(),
                );
        }
        docker_manifest.push(json!({
            "Config": oci_layout::blob_name(&img.config_digest),
            "RepoTags": names.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
            "Layers": layers.iter().map(|(_, d)| format!("blobs/sha256/{}", d.digest().digest())).collect::<Vec<_>>(),
        }));
    }
    add_file(
        &mut tar,
        oci_layout::LAYOUT_FILE,
        oci_layout::LAYOUT_CONTENT,
    )?;
    let idx = json!({ "schemaVersion": 2, "mediaType": media_type::INDEX, "manifests": index });
    add_file(
        &mut tar,
        oci_layout::INDEX_FILE,
        &serde_json::to_vec(&idx).expect("json"),
    )?;
    if format == SaveFormat::Docker {
        add_file(
            &mut tar,
            "manifest.json",
            &serde_json::to_vec(&docker_manifest).expect("json"),
        )?;
        if !repositories.is_empty() {
            add_file(
                &mut tar,
                "repositories",
                &serde_json::to_vec(&repositories).expect("json"),
            )?;
        }
    }
    tar.into_inner().ctx(|| "finishing archive")
}

/// [`save`] to the file `path`, which appears whole or not at all; the temp file of a save that was
/// killed is removed by the next one to that directory (see [`crate::outfile`]).
pub fn save_to_file(
    store: &Store,
    images: &[String],
    format: SaveFormat,
    platform: Option<&crate::Platform>,
    path: &Path,
) -> Result<()> {
    crate::outfile::write_file_atomically(path, |w| {
        Ok((save_platform(store, images, format, platform, w)?, ()))
    })
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_file<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(bytes.len() as u64, 0o444);
    tar.append_data(&mut h, name, bytes)
        .ctx(|| format!("writing {name}"))
}

fn add_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = header(0, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut h, name, io::empty())
        .ctx(|| format!("writing {name}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads every image in a `save`d archive (OCI layout or docker-archive, possibly compressed).
/// Returns Docker's lines: `Loaded image: NAME` or `Loaded image ID: sha256:...`.
///
/// One transaction: every blob is verified (layers against their config's diff_ids) before any
/// image is recorded, and the names move last, all at once; a load that fails changes no name and
/// no existing layer.
pub fn load<R: Read>(store: &Store, reader: R) -> Result<Vec<String>> {
    let _lease = store.lease()?;
    let dir = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.tmp_dir())
        .ctx(|| "creating temp dir")?;
    unpack_plain(layer::decompress(reader)?, dir.path())?;
    let d = dir.path();
    let mut indexes = Vec::new();
    let staged = if d.join("manifest.json").is_file() {
        load_docker(store, d)?
    } else if d.join("index.json").is_file() {
        load_oci(store, d, &mut indexes)?
    } else {
        return Err(Error::Invalid {
            what: "archive".into(),
            why: "neither manifest.json (docker-archive) nor index.json (OCI layout) found".into(),
        });
    };
    let images = store.put_manifests(&staged)?;
    let mut out = Vec::new();
    for (img, (_, tags)) in images.iter().zip(&staged) {
        loaded_lines(&mut out, img, tags);
    }
    for (index, children, tags) in &indexes {
        let d = store.put_index(index, children, tags)?;
        if tags.is_empty() {
            out.push(format!("Loaded image ID: {d}"));
        }
        for t in tags {
            out.push(format!("Loaded image: {}", t.familiar()));
        }
    }
    Ok(out)
}

/// A manifest ready for [`Store::put_manifests`] and the names it is loaded under.
type Staged = Vec<(Vec<u8>, Vec<Reference>)>;

/// Extracts a save archive (regular files and dirs only) into `dir`, refusing unsafe paths.
/// Symlinks and hardlinks to files (`docker save` links a layer shared by several images to its
/// first copy) are resolved inside the archive once everything is extracted, whatever their order;
/// a link leaving the archive is refused.
fn unpack_plain<R: Read>(reader: R, dir: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(reader);
    let mut links: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for e in ar.entries().ctx(|| "reading archive")? {
        let mut e = e.ctx(|| "reading archive")?;
        let path = normalize(Path::new(""), &e.path().ctx(|| "reading archive")?)?;
        if path.as_os_str().is_empty() {
            continue;
        }
        let dest = dir.join(&path);
        match e.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&dest).ctx(|| format!("creating {}", dest.display()))?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(p) = dest.parent() {
                    fs::create_dir_all(p).ctx(|| format!("creating {}", p.display()))?;
                }
                let mut f = File::create(&dest).ctx(|| format!("creating {}", dest.display()))?;
                io::copy(&mut e, &mut f).ctx(|| format!("writing {}", dest.display()))?;
                links.remove(&path);
            }
            kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                let Some(t) = e.link_name().ctx(|| "reading archive")? else {
                    continue;
                };
                // A symlink is relative to its directory, a hardlink to the archive's root.
                let base = match kind {
                    tar::EntryType::Symlink => path.parent().unwrap_or(Path::new("")),
                    _ => Path::new(""),
                };
                let target = normalize(base, &t).map_err(|_| Error::UnsafePath {
                    path: format!("{} -> {}", path.display(), t.display()),
                    why: "link leaves the archive".into(),
                })?;
                links.insert(path, target);
            }
            _ => {}
        }
    }
    for (link, _) in links.iter() {
        let mut target = link.clone();
        for _ in 0..=links.len() {
            match links.get(&target) {
                Some(next) => target = next.clone(),
                None => break,
            }
        }
        let src = dir.join(&target);
        if links.contains_key(&target) || !src.is_file() {
            // Dangling, looping or naming a directory: not a file of the archive. Left out; a
            // manifest naming it fails with that path.
            continue;
        }
        let dest = dir.join(link);
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p).ctx(|| format!("creating {}", p.display()))?;
        }
        if fs::hard_link(&src, &dest).is_err() {
            fs::copy(&src, &dest).ctx(|| format!("copying {}", dest.display()))?;
        }
    }
    Ok(())
}

/// `rel` resolved lexically against `base` (both inside the archive): `.` and `..` are applied, a
/// leading `/` means the archive's root. Errors when it would leave the archive.
fn normalize(base: &Path, rel: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    if !rel.is_absolute() {
        out.extend(base.components().filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        }));
    }
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(Error::UnsafePath {
                        path: rel.display().to_string(),
                        why: "outside the archive".into(),
                    });
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(out.iter().collect())
}

fn load_docker(store: &Store, dir: &Path) -> Result<Staged> {
    let items: Vec<DockerManifestItem> = serde_json::from_slice(
        &fs::read(dir.join("manifest.json")).ctx(|| "reading manifest.json")?,
    )
    .map_err(|e| Error::Invalid {
        what: "manifest.json".into(),
        why: e.to_string(),
    })?;
    let mut out = Vec::new();
    for item in items {
        let cfg_path = safe_join(dir, &item.config)?;
        let cfg_bytes = fs::read(&cfg_path).ctx(|| format!("reading {}", item.config))?;
        let config: ImageConfig =
            serde_json::from_slice(&cfg_bytes).map_err(|e| Error::Invalid {
                what: item.config.clone(),
                why: e.to_string(),
            })?;
        if config.rootfs.diff_ids.len() != item.layers.len() {
            return Err(Error::Invalid {
                what: "manifest.json".into(),
                why: format!(
                    "{} layers for {} but {} diff_ids in its config",
                    item.layers.len(),
                    item.config,
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let cfg = store.put_blob_bytes(&cfg_bytes)?;
        let mut descs = Vec::new();
        for (l, diff_id) in item.layers.iter().zip(&config.rootfs.diff_ids) {
            let p = safe_join(dir, l)?;
            let f = File::open(&p).ctx(|| format!("opening {l}"))?;
            let (b, size, c) = store.put_layer_blob(f, None, diff_id)?;
            descs.push(Descriptor::new(c.media_type().into(), size, b.to_oci()));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type::MANIFEST,
            "config": { "mediaType": media_type::CONFIG, "digest": cfg, "size": cfg_bytes.len() },
            "layers": descs,
        });
        let tags: Vec<Reference> = item
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<_>>()?;
        out.push((serde_json::to_vec(&manifest).expect("json"), tags));
    }
    Ok(out)
}

fn loaded_lines(out: &mut Vec<String>, img: &Image, tags: &[Reference]) {
    if tags.is_empty() {
        out.push(format!("Loaded image ID: {}", img.config_digest));
    }
    for t in tags {
        out.push(format!("Loaded image: {}", t.familiar()));
    }
}

fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf> {
    Ok(dir.join(normalize(Path::new(""), Path::new(rel))?))
}

/// An index to load: its bytes, its platform manifests found in the archive, its names.
pub(crate) type StagedIndex = (Vec<u8>, Vec<Vec<u8>>, Vec<Reference>);

/// Stages the images of an OCI layout; an index entry is staged whole into `indexes` (its
/// platform images' blobs verified as they are copied, other manifests' blobs as they are).
fn load_oci(store: &Store, dir: &Path, indexes: &mut Vec<StagedIndex>) -> Result<Staged> {
    let blob = |d: &Digest| dir.join(oci_layout::blob_name(d));
    let put = |d: &Digest| -> Result<()> {
        let f = File::open(blob(d)).ctx(|| format!("opening blob {d} in the archive"))?;
        store.put_blob(f, Some(d)).map(|_| ()).map_err(|e| match e {
            Error::DigestMismatch { actual, .. } => Error::DigestMismatch {
                what: format!("blobs/sha256/{} in the archive", d.hex()),
                expected: d.clone(),
                actual,
            },
            e => e,
        })
    };
    let put_manifest_blobs = |v: &Value| put_manifest_blobs_from(store, dir, &put, v);
    let index: Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).ctx(|| "reading index.json")?)
            .map_err(|e| Error::Invalid {
                what: "index.json".into(),
                why: e.to_string(),
            })?;
    let mut out: Staged = Vec::new();
    let mut stack: Vec<(Value, Option<Reference>)> = index["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let name = entry_name(&e);
            (e, name)
        })
        .collect();
    while let Some((e, name)) = stack.pop() {
        let d: Digest = e["digest"].as_str().unwrap_or_default().parse()?;
        let mt = e["mediaType"].as_str().unwrap_or_default();
        let (bytes, v) = crate::index_archive::read_manifest(&blob(&d), &d)?;
        if mt == media_type::INDEX
            || mt == media_type::DOCKER_MANIFEST_LIST
            || v.get("manifests").is_some()
        {
            let children =
                crate::index_archive::stage_children(dir, &v, &put, &put_manifest_blobs)?;
            indexes.push((bytes, children, name.into_iter().collect()));
            continue;
        }
        put_manifest_blobs(&v)?;
        out.push((bytes, name.into_iter().collect()));
    }
    Ok(out)
}

/// The config and layers of the manifest `v` from the archive `dir` into the store, each layer
/// checked against its diff_id as it is copied.
fn put_manifest_blobs_from(
    store: &Store,
    dir: &Path,
    put: &dyn Fn(&Digest) -> Result<()>,
    v: &Value,
) -> Result<()> {
    let blob = |d: &Digest| dir.join(oci_layout::blob_name(d));
    let cfg: Digest = v["config"]["digest"].as_str().unwrap_or_default().parse()?;
    put(&cfg)?;
    let diff_ids = serde_json::from_slice::<ImageConfig>(&store.read_blob(&cfg)?)
        .map(|c| c.rootfs.diff_ids)
        .unwrap_or_default();
    let layers = v["layers"].as_array().cloned().unwrap_or_default();
    for (i, l) in layers.iter().enumerate() {
        let d: Digest = l["digest"].as_str().unwrap_or_default().parse()?;
        match diff_ids.get(i).filter(|_| diff_ids.len() == layers.len()) {
            // Checked against its diff_id as it is copied, so a compressed layer is read once.
            Some(diff_id) if !store.has_blob(&d) => {
                let f = File::open(blob(&d)).ctx(|| format!("opening blob {d} in the archive"))?;
                store
                    .put_layer_blob(f, Some(&d), diff_id)
                    .map_err(|e| match e {
                        Error::DigestMismatch { actual, .. } => Error::DigestMismatch {
                            what: format!("blobs/sha256/{} in the archive", d.hex()),
                            expected: d.clone(),
                            actual,
                        },
                        e => e,
                    })?;
            }
            // Already stored, or a config that does not match (refused when recorded).
            _ => put(&d)?,
        }
    }
    Ok(())
}

/// The image name of an index entry: `io.containerd.image.name`, else a `ref.name` that is a full
/// reference (a bare tag like `latest` names no repository).
fn entry_name(e: &Value) -> Option<Reference> {
    let ann = &e["annotations"];
    if let Some(n) = ann["io.containerd.image.name"].as_str() {
        return Reference::parse(n).ok();
    }
    let r = ann[crate::store::REF_NAME].as_str()?;
    if r.contains(':') || r.contains('/') {
        Reference::parse(r).ok()
    } else {
        None
    }
}

/// What `hoist import` reads.
pub enum ImportSource<'a> {
    /// A rootfs directory.
    Dir(&'a Path),
    /// A tar stream (plain, gzip or zstd), e.g. a file or stdin.
    Tar(Box<dyn Read + 'a>),
}

/// Settings for [`import`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Shown in the history comment as `Imported from NAME` (`-` for stdin).
    pub source_name: String,
    /// Replaces the history comment (`docker import -m`).
    pub message: Option<String>,
    /// Run-time defaults (`docker import --change`).
    pub config: Option<crate::ContainerConfig>,
    pub tag: Option<Reference>,
    /// The platform the config names (`docker import --platform`; default this machine's).
    pub platform: Option<crate::Platform>,
}

/// Makes a one-layer image from a rootfs (as `docker import`).
pub fn import(store: &Store, src: ImportSource<'_>, opts: &ImportOptions) -> Result<Image> {
    let _lease = store.lease()?;
    let info = match src {
        ImportSource::Dir(d) => store.commit_dir(d, &LayerOptions::from_env())?,
        ImportSource::Tar(r) => store.commit_tar(r).map_err(|e| match e {
            Error::Invalid { why, .. } => Error::Invalid {
                what: format!("tar archive {}", opts.source_name),
                why,
            },
            e => e,
        })?,
    };
    let mut config = ImageConfig::new_for_host();
    if let Some(p) = &opts.platform {
        let p = p.normalize();
        config.os = p.os;
        config.architecture = p.architecture;
        config.variant = p.variant;
    }
    config.config = opts.config.clone();
    config.rootfs.diff_ids.push(info.diff_id.clone());
    config.history.push(History {
        created: config.created.clone(),
        comment: Some(
            opts.message
                .clone()
                .unwrap_or_else(|| format!("Imported from {}", opts.source_name)),
        ),
        ..Default::default()
    });
    let tags: Vec<Reference> = opts.tag.iter().cloned().collect();
    store.write_image(&config, &[info.descriptor()], &tags)
}

/// Writes the image's flattened filesystem (all layers applied) as a tar to `out`.
pub fn export<W: Write>(store: &Store, image: &Image, out: W) -> Result<W> {
    let _lease = store.lease()?;
    let dir = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(store.tmp_dir())
        .ctx(|| "creating temp dir")?;
    for (diff_id, _) in image.layers()? {
        let (got, _) =
            layer::apply_layer(store.open_layer(&diff_id)?, dir.path(), ApplyMode::Merge)?;
        if got != diff_id {
            return Err(Error::DigestMismatch {
                what: "layer".into(),
                expected: diff_id,
                actual: got,
            });
        }
    }
    layer::write_dir(dir.path(), &LayerOptions::default(), out)
}
