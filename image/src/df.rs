//! Disk usage as Docker reports it: image sizes (`hoist images`, `image inspect`) and
//! `hoist system df [-v]`.
//!
//! An image's size is the sum of its layers' sizes, and a layer's size is what Docker's overlay2
//! driver measures on its extracted directory: the bytes of every regular file plus the length of
//! every symlink target, hardlinks counted once, directories and whiteouts nothing. It depends only
//! on the layer's content, so the same image has the same size in every store, however it got there
//! (built, pulled gzip or zstd, loaded). Measured once from the layer's tar and kept in
//! `layerdb/<diff_id>/size`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::Path;

use crate::display::{human_size, human_size4, since, table};
use crate::{Digest, Image, IoContext, Result, Store};

/// Docker's size of one layer (see the module docs), measured once and then read from its record.
pub fn layer_size(store: &Store, diff_id: &Digest) -> Result<u64> {
    let rec = store
        .root()
        .join("layerdb")
        .join(diff_id.hex())
        .join("size");
    if let Some(n) = fs::read_to_string(&rec)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return Ok(n);
    }
    let size = measure(store.open_layer(diff_id)?).ctx(|| format!("reading layer {diff_id}"))?;
    if let Some(dir) = rec.parent() {
        if fs::create_dir_all(dir).is_ok() {
            let _ = store.write_atomic(&rec, size.to_string().as_bytes());
        }
    }
    Ok(size)
}

/// Regular file bytes plus symlink target lengths in a layer tar (later entries for a path replace
/// earlier ones, as when it is extracted).
fn measure(r: impl Read) -> std::io::Result<u64> {
    let mut by_path: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path_bytes().into_owned();
        let name = path.rsplit(|b| *b == b'/').find(|c| !c.is_empty());
        if name.is_some_and(|n| n.starts_with(b".wh.")) {
            continue;
        }
        let size = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => entry.size(),
            tar::EntryType::Symlink => entry.link_name_bytes().map_or(0, |l| l.len() as u64),
            _ => 0,
        };
        by_path.insert(path, size);
    }
    Ok(by_path.values().sum())
}

/// Docker's size of an image: the sum of its layers' sizes.
pub fn image_size(store: &Store, image: &Image) -> Result<u64> {
    image
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| layer_size(store, d))
        .sum()
}

/// Bytes under `dir` counted as Docker counts a directory: every non-directory entry's size,
/// hardlinks once.
pub fn tree_size(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir() && m.len() > 0)
        .filter(|m| seen.insert(std::os::unix::fs::MetadataExt::ino(m)))
        .map(|m| m.len())
        .sum()
}

/// One image in `system df -v`.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub repository: String,
    pub tag: String,
    pub id: Digest,
    pub created: Option<String>,
    pub size: u64,
    /// Bytes of layers other images have too.
    pub shared: u64,
    pub containers: usize,
}

/// What `hoist system df` reports.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub images: Vec<ImageUsage>,
    /// Distinct layers' bytes (shared layers once).
    pub images_size: u64,
    /// Running containers: (id, writable layer bytes).
    pub containers: Vec<(String, u64)>,
    /// Named volumes: (name, bytes).
    pub volumes: Vec<(String, u64)>,
    /// Build cache records (cache keys and cache mounts) and their bytes outside any image.
    pub build_cache_records: usize,
    pub build_cache_size: u64,
}

/// Measures the store's disk usage.
pub fn usage(store: &Store) -> Result<Usage> {
    let mut u = Usage::default();
    let summaries = store.list_images()?;
    let mut per_image: Vec<(ImageUsage, Vec<(Digest, u64)>)> = Vec::new();
    let mut layer_users: BTreeMap<Digest, HashSet<Digest>> = BTreeMap::new();
    for s in summaries {
        let Ok(img) = store.load_image(&s.manifest_digest) else {
            continue;
        };
        let mut layers = Vec::new();
        for d in &img.config.rootfs.diff_ids {
            layers.push((d.clone(), layer_size(store, d)?));
            layer_users
                .entry(d.clone())
                .or_default()
                .insert(img.config_digest.clone());
        }
        let (repository, tag) = match &s.name {
            Some(n) => (
                n.familiar_repository(),
                n.tag.clone().unwrap_or_else(|| "<none>".into()),
            ),
            None => ("<none>".into(), "<none>".into()),
        };
        per_image.push((
            ImageUsage {
                repository,
                tag,
                id: s.id.clone(),
                created: s.created.clone(),
                size: layers.iter().map(|l| l.1).sum(),
                shared: 0,
                containers: 0,
            },
            layers,
        ));
    }
    let mut counted = HashSet::new();
    for (mut iu, layers) in per_image {
        iu.shared = layers
            .iter()
            .filter(|(d, _)| layer_users.get(d).is_some_and(|users| users.len() > 1))
            .map(|l| l.1)
            .sum();
        for (d, n) in &layers {
            if counted.insert(d.clone()) {
                u.images_size += n;
            }
        }
        u.images.push(iu);
    }
    for (sub, out) in [
        ("containers", &mut u.containers),
        ("volumes", &mut u.volumes),
    ] {
        if let Ok(rd) = fs::read_dir(store.root().join(sub)) {
            let mut v: Vec<(String, u64)> = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        tree_size(&e.path()),
                    )
                })
                .collect();
            v.sort();
            *out = v;
        }
    }
    // The build cache: its records, cache mounts, and the blobs it keeps that no image uses.
    let cache = store.root().join("cache");
    u.build_cache_records = fs::read_dir(cache.join("keys")).map_or(0, |rd| rd.count());
    if let Ok(rd) = fs::read_dir(cache.join("mounts")) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                u.build_cache_records += 1;
                u.build_cache_size += tree_size(&e.path());
            }
        }
    }
    let rooted = fs::read_to_string(store.root().join("gcroots/build-cache")).unwrap_or_default();
    let mut seen = HashSet::new();
    for d in rooted
        .lines()
        .filter_map(|l| l.trim().parse::<Digest>().ok())
    {
        if layer_users.contains_key(&d) || !seen.insert(d.clone()) {
            continue;
        }
        u.build_cache_size += layer_size(store, &d)
            .ok()
            .or_else(|| store.blob_size(&d).ok())
            .unwrap_or(0);
    }
    Ok(u)
}

/// `RECLAIMABLE` as Docker prints it: the size, and its share of `total` when there is any.
fn reclaimable(bytes: u64, total: u64) -> String {
    if total == 0 {
        return human_size4(bytes);
    }
    format!(
        "{} ({}%)",
        human_size4(bytes),
        (100.0 * bytes as f64 / total as f64) as u64
    )
}

/// `docker system df` (with `verbose`, `-v`) for `u`.
pub fn render(u: &Usage, verbose: bool) -> String {
    let active_images = u.images.iter().filter(|i| i.containers > 0).count();
    let containers_size: u64 = u.containers.iter().map(|c| c.1).sum();
    let volumes_size: u64 = u.volumes.iter().map(|v| v.1).sum();
    if !verbose {
        let rows = vec![
            ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
                .map(String::from)
                .to_vec(),
            vec![
                "Images".into(),
                u.images.len().to_string(),
                active_images.to_string(),
                human_size4(u.images_size),
                reclaimable(u.images_size, u.images_size),
            ],
            vec![
                "Containers".into(),
                u.containers.len().to_string(),
                u.containers.len().to_string(),
                human_size4(containers_size),
                reclaimable(0, containers_size),
            ],
            vec![
                "Local Volumes".into(),
                u.volumes.len().to_string(),
                "0".into(),
                human_size4(volumes_size),
                reclaimable(volumes_size, volumes_size),
            ],
            vec![
                "Build Cache".into(),
                u.build_cache_records.to_string(),
                "0".into(),
                human_size4(u.build_cache_size),
                human_size4(u.build_cache_size),
            ],
        ];
        return table(&rows);
    }
    let mut out = String::from("Images space usage:\n\n");
    let mut rows = vec![
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for i in &u.images {
        rows.push(vec![
            i.repository.clone(),
            i.tag.clone(),
            i.id.short().to_string(),
            since(i.created.as_deref()),
            human_size(i.size),
            human_size4(i.shared),
            human_size4(i.size - i.shared),
            i.containers.to_string(),
        ]);
    }
    out.push_str(&table(&rows));
    out.push_str("\nContainers space usage:\n\n");
    let mut rows = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "LOCAL VOLUMES",
            "SIZE",
            "CREATED",
            "STATUS",
            "NAMES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (id, size) in &u.containers {
        rows.push(vec![
            id.chars().take(12).collect(),
            String::new(),
            String::new(),
            "0".into(),
            human_size(*size),
            String::new(),
            "Up".into(),
            String::new(),
        ]);
    }
    out.push_str(&table(&rows));
    out.push_str("\nLocal Volumes space usage:\n\n");
    let mut rows = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
    for (name, size) in &u.volumes {
        rows.push(vec![name.clone(), "0".into(), human_size(*size)]);
    }
    out.push_str(&table(&rows));
    out.push_str(&format!(
        "\nBuild cache usage: {}\n",
        human_size4(u.build_cache_size)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units_human_size() {
        assert_eq!(human_size4(0), "0B");
        assert_eq!(human_size4(15_870_000), "15.87MB");
        assert_eq!(human_size4(1_982_364), "1.982MB");
        assert_eq!(human_size4(13_920_000), "13.92MB");
        assert_eq!(human_size4(10_500), "10.5kB");
        assert_eq!(human_size4(7), "7B");
        assert_eq!(reclaimable(5, 10), "5B (50%)");
        assert_eq!(reclaimable(0, 0), "0B");
    }

    #[test]
    fn layer_size_counts_files_and_symlinks_once_per_path() {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            b.append_data(&mut h, path, data).unwrap();
        };
        add("d/", tar::EntryType::Directory, b"", None);
        add("d/a", tar::EntryType::Regular, b"12345", None);
        add("d/a", tar::EntryType::Regular, b"123", None);
        add("d/l", tar::EntryType::Symlink, b"", Some("a-target"));
        add("d/h", tar::EntryType::Link, b"", Some("d/a"));
        add("d/.wh.gone", tar::EntryType::Regular, b"", None);
        let bytes = b.into_inner().unwrap();
        assert_eq!(measure(&bytes[..]).unwrap(), 3 + 8);
    }
}
