//! The build cache shared through a registry or a directory: `--cache-to
//! type=registry,ref=R[,mode=min|max]`, `--cache-to type=inline`, `--cache-from [type=registry,ref=]R`,
//! and `--cache-to type=local,dest=DIR` / `--cache-from type=local,src=DIR` (an OCI layout, as
//! buildx's local cache, that CI systems save and restore between machines).
//!
//! What travels is the builder's own cache records (step key -> layer diff_id and creation time,
//! see [`crate::cache`]) as JSON [`Metadata`], with the layers they name. A registry export is an
//! artifact manifest (config = metadata, layers = the gzip layers; [`hoist_registry::cache`]); an
//! inline export is a manifest annotation ([`INLINE_ANNOTATION`]) of the built image, whose own
//! layers are the cached ones. On import only the metadata is fetched before solving; a step whose
//! key it holds fetches that one layer ([`RemoteCache::lookup`], called by [`crate::cache::Cache`])
//! instead of running.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, anyhow, bail};
use hoist_image::{Compression, Digest, Reference, Store};
use hoist_registry::{Client, ClientOptions, Descriptor, LayerMismatch, LayoutStore, ProgressMode};
use serde::{Deserialize, Serialize};

use super::{CacheRecord, Tier};
use crate::progress::Progress;

/// Manifest annotation holding an inline cache's [`Metadata`].
pub const INLINE_ANNOTATION: &str = "io.hoist.buildcache.v1";

/// One `--cache-to` / `--cache-from` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSpec {
    /// `type=registry,ref=R[,mode=min|max]` (or a bare `R` for `--cache-from`).
    Registry { reference: String, mode_max: bool },
    /// `type=inline`: the cache rides in the pushed image's manifest.
    Inline,
    /// `type=local,dest=DIR` / `type=local,src=DIR[,tag=T]`: an OCI layout directory whose
    /// `index.json` entry `tag` (default `latest`) is the cache manifest.
    Local {
        dir: std::path::PathBuf,
        tag: String,
        mode_max: bool,
    },
}

impl CacheSpec {
    /// Parses a `--cache-from` value in buildx's CSV syntax (a value without `type=` is a registry
    /// reference; a local cache is read from `src=DIR`).
    pub fn parse_from(s: &str) -> Result<CacheSpec> {
        Self::parse(s, "src")
    }

    /// Parses a `--cache-to` value (a local cache is written to `dest=DIR`).
    pub fn parse_to(s: &str) -> Result<CacheSpec> {
        Self::parse(s, "dest")
    }

    /// `dir_key` is the one key naming a local cache's directory for this flag.
    fn parse(s: &str, dir_key: &str) -> Result<CacheSpec> {
        if !s.contains('=') {
            if s.is_empty() {
                bail!("invalid cache option: empty value");
            }
            return Ok(CacheSpec::Registry {
                reference: s.to_string(),
                mode_max: false,
            });
        }
        let mut kind = None;
        let mut reference = None;
        let mut dir = None;
        let mut tag = None;
        let mut mode_max = false;
        for field in s.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| anyhow!("invalid value {field:?} in {s:?}: expected key=value"))?;
            match k.trim() {
                "type" => kind = Some(v.trim().to_string()),
                "ref" => reference = Some(v.trim().to_string()),
                k @ ("dest" | "src") if k == dir_key => {
                    dir = Some(std::path::PathBuf::from(v.trim()))
                }
                k @ ("dest" | "src") => {
                    bail!(
                        "{k}= names the directory of the other direction: use {dir_key}=DIR in {s:?}"
                    )
                }
                "tag" => tag = Some(v.trim().to_string()),
                "mode" => match v.trim() {
                    "min" => mode_max = false,
                    "max" => mode_max = true,
                    other => bail!("invalid cache mode {other:?}: use min or max"),
                },
                // buildx knobs hoist has no use for (compression is gzip, OCI media types always).
                "oci-mediatypes" | "image-manifest" | "compression" | "ignore-error" => {}
                other => bail!("unknown cache option {other:?} in {s:?}"),
            }
        }
        match kind.as_deref() {
            Some("registry") | None => Ok(CacheSpec::Registry {
                reference: reference
                    .ok_or_else(|| anyhow!("type=registry cache needs ref=NAME in {s:?}"))?,
                mode_max,
            }),
            Some("inline") => Ok(CacheSpec::Inline),
            Some("local") => Ok(CacheSpec::Local {
                dir: dir.ok_or_else(|| anyhow!("type=local cache needs {dir_key}=DIR in {s:?}"))?,
                tag: tag.unwrap_or_else(|| "latest".into()),
                mode_max,
            }),
            Some(other) => {
                bail!(
                    "cache type {other:?} is not supported (hoist supports registry, local and inline)"
                )
            }
        }
    }
}

/// The cache metadata exchanged through registries.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    pub version: u32,
    pub records: Vec<Entry>,
}

/// One cached step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub key: String,
    pub diff_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Digest of the (compressed) blob in the cache manifest; None in an inline cache, whose
    /// image manifest maps diff_ids to blobs itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

/// Where an imported cache's layers come from.
#[derive(Clone)]
enum Source {
    Registry(Reference),
    Local(Arc<LayoutStore>),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Registry(r) => write!(f, "{r}"),
            Source::Local(l) => write!(f, "{}", l.root().display()),
        }
    }
}

/// A step imported from a remote cache.
#[derive(Clone)]
struct Imported {
    record: CacheRecord,
    layer: Descriptor,
    source: Source,
}

/// Per-build remote cache state: the records this build used (for export) and the ones imported
/// (for lookups). Hooked into [`crate::cache::Cache::with_remote`].
pub struct RemoteCache {
    store: Store,
    progress: Arc<Progress>,
    client: Client,
    runtime: tokio::runtime::Runtime,
    used: Mutex<BTreeMap<String, CacheRecord>>,
    imported: HashMap<String, Imported>,
    /// Layer fetches in flight are serialized per diff_id by the store; this avoids asking twice.
    fetched: Mutex<HashSet<String>>,
}

impl RemoteCache {
    /// State for one build; `insecure_registries` as `hoist pull` takes them.
    pub fn new(
        store: Store,
        progress: Arc<Progress>,
        insecure_registries: &[String],
    ) -> Result<RemoteCache> {
        Ok(RemoteCache {
            store,
            progress,
            client: Client::new(ClientOptions {
                insecure_registries: insecure_registries.to_vec(),
                ..ClientOptions::default()
            })?,
            runtime: quiet_runtime()?,
            used: Mutex::new(BTreeMap::new()),
            imported: HashMap::new(),
            fetched: Mutex::new(HashSet::new()),
        })
    }

    /// Fetches the metadata of every `--cache-from` source (not their layers). A source that
    /// cannot be read is a warning, as in buildx: the build goes on without it.
    pub fn import(&mut self, specs: &[CacheSpec]) {
        for spec in specs {
            let (reference, source) = match spec {
                CacheSpec::Registry { reference, .. } => (reference.clone(), None),
                CacheSpec::Local { dir, tag, .. } => {
                    (format!("{}:{tag}", dir.display()), Some((dir, tag)))
                }
                CacheSpec::Inline => continue,
            };
            let v = self
                .progress
                .vertex(&format!("importing cache manifest from {reference}"));
            let found = match source {
                None => self.import_one(&reference),
                Some((dir, tag)) => self.import_local(dir, tag),
            };
            match found {
                Ok(0) => {
                    v.log("no cache found");
                    v.done();
                }
                Ok(n) => {
                    v.log(&format!("{n} cached steps"));
                    v.done();
                }
                Err(e) => {
                    v.error(&format!("{e:#}"));
                    self.progress.message(&format!(
                        "WARNING: failed to import cache {reference}: {e:#}"
                    ));
                }
            }
        }
    }

    fn import_one(&mut self, reference: &str) -> Result<usize> {
        let repo = Reference::parse(reference)?;
        let Some(remote) = self
            .runtime
            .block_on(hoist_registry::cache::import_cache(&self.client, &repo))?
        else {
            return Ok(0);
        };
        self.add_imported(remote, Source::Registry(repo))
    }

    fn import_local(&mut self, dir: &std::path::Path, tag: &str) -> Result<usize> {
        if !dir.join("index.json").is_file() {
            bail!("{} is not an OCI layout (no index.json)", dir.display());
        }
        let layout = Arc::new(LayoutStore::open(dir)?);
        let Some(remote) = hoist_registry::cache::import_cache_local(&layout, tag)? else {
            return Ok(0);
        };
        self.add_imported(remote, Source::Local(layout))
    }

    /// Records the steps of an imported cache manifest; returns how many.
    fn add_imported(
        &mut self,
        remote: hoist_registry::cache::RemoteCache,
        source: Source,
    ) -> Result<usize> {
        let layers = remote.layers();
        let (meta, by_diff): (Metadata, HashMap<String, Descriptor>) = if remote.is_artifact() {
            let meta: Metadata =
                serde_json::from_slice(&remote.metadata).context("parsing the cache metadata")?;
            (meta, HashMap::new())
        } else {
            // An image: the inline cache is an annotation, its layers the image's own.
            let Some(text) = remote
                .manifest
                .annotations
                .as_ref()
                .and_then(|a| a.get(INLINE_ANNOTATION))
            else {
                return Ok(0);
            };
            let meta: Metadata =
                serde_json::from_str(text).context("parsing the inline cache metadata")?;
            let config: serde_json::Value =
                serde_json::from_slice(&remote.metadata).context("parsing the image config")?;
            let diff_ids = config["rootfs"]["diff_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let by_diff = diff_ids
                .iter()
                .zip(layers)
                .filter_map(|(d, l)| Some((d.as_str()?.to_string(), l.clone())))
                .collect();
            (meta, by_diff)
        };
        let mut n = 0;
        for e in meta.records {
            let layer = match &e.layer {
                Some(digest) => layers.iter().find(|l| &l.digest == digest).cloned(),
                None => by_diff.get(&e.diff_id).cloned(),
            };
            let Some(layer) = layer else { continue };
            n += 1;
            self.imported.entry(e.key).or_insert(Imported {
                record: CacheRecord {
                    diff_id: Some(e.diff_id),
                    created: e.created,
                },
                layer,
                source: source.clone(),
            });
        }
        Ok(n)
    }

    /// Notes that this build used `record` for `key` (it will be exported).
    fn note(&self, key: &str, record: &CacheRecord) {
        self.used
            .lock()
            .unwrap()
            .insert(key.to_string(), record.clone());
    }

    /// Resolves `key` for the solver given the local record: the local one when its layer is
    /// here, else an imported one whose layer is fetched now. None: run the step.
    fn resolve(&self, key: &str, local: Option<CacheRecord>) -> Option<CacheRecord> {
        if let Some(rec) = &local
            && self.layer_present(rec)
        {
            self.note(key, rec);
            return local;
        }
        let imp = self.imported.get(key)?;
        match self.fetch(imp) {
            Ok(()) => {
                self.note(key, &imp.record);
                Some(imp.record.clone())
            }
            Err(e) => {
                self.progress.message(&format!(
                    "WARNING: cache layer {} from {}: {e:#} (running the step instead)",
                    imp.layer.digest, imp.source
                ));
                local
            }
        }
    }

    fn layer_present(&self, rec: &CacheRecord) -> bool {
        rec.diff_id
            .as_deref()
            .and_then(|d| d.parse::<Digest>().ok())
            .is_some_and(|d| self.store.has_blob(&d))
    }

    /// Downloads an imported step's layer and stores it uncompressed (as a local step would have
    /// left it), verified against its diff_id.
    fn fetch(&self, imp: &Imported) -> Result<()> {
        let diff_id: Digest = imp
            .record
            .diff_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| anyhow!("{e}"))?;
        if self.store.has_blob(&diff_id) {
            return Ok(());
        }
        let blob: Digest = imp.layer.digest.parse().map_err(|e| anyhow!("{e}"))?;
        let first = self
            .fetched
            .lock()
            .unwrap()
            .insert(imp.layer.digest.clone());
        let v = first.then(|| {
            self.progress.vertex(&format!(
                "importing cache layer {} ({} bytes) from {}",
                imp.layer.digest, imp.layer.size, imp.source
            ))
        });
        // Checked against its diff_id while it streams in: a blob that is another layer is
        // never stored.
        let want = Some(diff_id.as_str());
        let fetched = match &imp.source {
            Source::Registry(repo) => {
                let quiet = hoist_registry::Progress::new(ProgressMode::Quiet);
                self.runtime
                    .block_on(hoist_registry::fetch_verified(
                        &self.client,
                        &self.store,
                        repo,
                        &[(&imp.layer, want)],
                        1,
                        &quiet,
                    ))
                    .map(drop)
            }
            Source::Local(layout) => hoist_registry::cache::copy_layer(
                layout.as_ref(),
                &self.store,
                &imp.layer.digest,
                diff_id.as_str(),
            ),
        }
        .map_err(
            |e| match e.chain().find_map(|c| c.downcast_ref::<LayerMismatch>()) {
                Some(m) => anyhow!(
                    "cache layer {} holds {}, not {}",
                    m.blob,
                    m.actual,
                    m.expected
                ),
                None => e,
            },
        );
        let r = fetched.and_then(|()| self.unpack_verified(&blob, &diff_id, &imp.layer.media_type));
        match (v, &r) {
            (Some(v), Ok(())) => v.done(),
            (Some(v), Err(e)) => v.error(&format!("{e:#}")),
            _ => {}
        }
        r
    }

    /// Stores the uncompressed layer of a fetched blob, and records the blob as its compressed
    /// form, only once its content is the layer `diff_id` the cache claims.
    fn unpack_verified(&self, blob: &Digest, diff_id: &Digest, media_type: &str) -> Result<()> {
        if blob != diff_id {
            let info = self.store.commit_tar(self.store.open_blob(blob)?)?;
            if info.diff_id != *diff_id {
                bail!("cache layer {blob} holds {}, not {diff_id}", info.diff_id);
            }
        }
        let c = Compression::from_media_type(media_type);
        if c != Compression::None {
            self.store.register_layer_blob(diff_id, blob, c)?;
        }
        Ok(())
    }

    /// The records to export: every step this build used (`mode=max`), or those whose layer is in
    /// the final image (`mode=min`, inline).
    fn entries(&self, mode_max: bool, final_diff_ids: &[String]) -> Vec<Entry> {
        let keep: HashSet<&str> = final_diff_ids.iter().map(String::as_str).collect();
        self.used
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(k, r)| {
                let d = r.diff_id.clone()?;
                (mode_max || keep.contains(d.as_str())).then(|| Entry {
                    key: k.clone(),
                    diff_id: d,
                    created: r.created.clone(),
                    layer: None,
                })
            })
            .collect()
    }

    /// The manifest annotations of an inline cache (`--cache-to type=inline`).
    pub fn inline_annotations(
        &self,
        final_diff_ids: &[String],
    ) -> Result<BTreeMap<String, String>> {
        let meta = Metadata {
            version: 1,
            records: self.entries(false, final_diff_ids),
        };
        Ok(BTreeMap::from([(
            INLINE_ANNOTATION.to_string(),
            serde_json::to_string(&meta)?,
        )]))
    }

    /// Pushes the cache to every `type=registry` destination of `specs`.
    pub fn export(&self, specs: &[CacheSpec], final_diff_ids: &[String]) -> Result<()> {
        for spec in specs {
            let (what, result) = match spec {
                CacheSpec::Registry {
                    reference,
                    mode_max,
                } => {
                    let v = self.progress.vertex("exporting cache to registry");
                    let r = self.export_one(reference, *mode_max, final_diff_ids, &|l| v.log(l));
                    (reference.clone(), (v, r))
                }
                CacheSpec::Local { dir, tag, mode_max } => {
                    let v = self.progress.vertex("exporting cache to client directory");
                    let r = self.export_local(dir, tag, *mode_max, final_diff_ids, &|l| v.log(l));
                    (dir.display().to_string(), (v, r))
                }
                CacheSpec::Inline => continue,
            };
            match result {
                (v, Ok(())) => v.done(),
                (v, Err(e)) => {
                    v.error(&format!("{e:#}"));
                    return Err(e.context(format!("failed to export cache to {what}")));
                }
            }
        }
        Ok(())
    }

    /// The records and gzip layers of an export, each record naming its layer blob.
    fn export_records(
        &self,
        mode_max: bool,
        final_diff_ids: &[String],
        log: &dyn Fn(&str),
    ) -> Result<(bytes::Bytes, Vec<Descriptor>)> {
        log("preparing build cache for export");
        let mut records = self.entries(mode_max, final_diff_ids);
        let mut layers: Vec<Descriptor> = Vec::new();
        for e in &mut records {
            let d: Digest = e.diff_id.parse().map_err(|e| anyhow!("{e}"))?;
            let c = self.store.compressed_layer(&d, Compression::Gzip)?;
            let desc = Descriptor::new(c.media_type().as_ref(), c.digest().as_ref(), c.size());
            e.layer = Some(desc.digest.clone());
            if !layers.iter().any(|l| l.digest == desc.digest) {
                log(&format!("writing layer {}", desc.digest));
                layers.push(desc);
            }
        }
        let meta = Metadata {
            version: 1,
            records,
        };
        Ok((bytes::Bytes::from(serde_json::to_vec(&meta)?), layers))
    }

    fn export_local(
        &self,
        dir: &std::path::Path,
        tag: &str,
        mode_max: bool,
        final_diff_ids: &[String],
        log: &dyn Fn(&str),
    ) -> Result<()> {
        let (metadata, layers) = self.export_records(mode_max, final_diff_ids, log)?;
        let layout = LayoutStore::open(dir)?;
        let desc = hoist_registry::cache::export_cache_local(
            &self.store,
            &layout,
            tag,
            &metadata,
            layers,
        )?;
        log(&format!("writing cache manifest {} done", desc.digest));
        Ok(())
    }

    fn export_one(
        &self,
        reference: &str,
        mode_max: bool,
        final_diff_ids: &[String],
        log: &dyn Fn(&str),
    ) -> Result<()> {
        let dest = Reference::parse(reference)?;
        let (bytes, layers) = self.export_records(mode_max, final_diff_ids, log)?;
        let quiet = hoist_registry::Progress::new(ProgressMode::Quiet);
        let pushed = self.runtime.block_on(hoist_registry::cache::export_cache(
            &self.client,
            &self.store,
            &dest,
            bytes,
            layers,
            &hoist_registry::PushOptions::default(),
            &quiet,
        ))?;
        log(&format!("writing cache manifest {} done", pushed.digest));
        Ok(())
    }
}

/// Name of [`quiet_runtime`]'s threads.
const THREAD_NAME: &str = "hoist-reg-io";

/// Blocking-pool threads of [`quiet_runtime`] (file I/O and DNS of concurrent layer fetches).
const BLOCKING_THREADS: usize = 8;

/// A tokio runtime whose threads all exist from the start and stay until it is dropped: layer
/// fetches run while other chains clone RUN sandboxes, and no thread may start or exit then
/// (see the solver). Tokio starts blocking threads on demand and ends idle ones, so every one is
/// started here and kept alive.
fn quiet_runtime() -> Result<tokio::runtime::Runtime> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(THREAD_NAME)
        .worker_threads(2)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_keep_alive(std::time::Duration::from_secs(7 * 24 * 3600))
        .build()?;
    let all_started = Arc::new(std::sync::Barrier::new(BLOCKING_THREADS));
    rt.block_on(async {
        let handles: Vec<_> = (0..BLOCKING_THREADS)
            .map(|_| {
                let b = all_started.clone();
                tokio::task::spawn_blocking(move || {
                    b.wait();
                })
            })
            .collect();
        for h in handles {
            h.await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(rt)
}

impl Tier for RemoteCache {
    fn lookup(&self, key: &str, below: Option<CacheRecord>) -> Option<CacheRecord> {
        self.resolve(key, below)
    }

    /// Notes the record for export (the local tier keeps it).
    fn store(&self, key: &str, record: &CacheRecord) -> Result<()> {
        self.note(key, record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_cache_options() {
        assert_eq!(
            CacheSpec::parse_to("type=registry,ref=r:5000/c:main,mode=max").unwrap(),
            CacheSpec::Registry {
                reference: "r:5000/c:main".into(),
                mode_max: true
            }
        );
        assert_eq!(
            CacheSpec::parse_from("r/app:1").unwrap(),
            CacheSpec::Registry {
                reference: "r/app:1".into(),
                mode_max: false
            }
        );
        assert_eq!(
            CacheSpec::parse_to("type=inline").unwrap(),
            CacheSpec::Inline
        );
        assert!(CacheSpec::parse_to("type=registry").is_err());
        assert_eq!(
            CacheSpec::parse_to("type=local,dest=/tmp/c,mode=max").unwrap(),
            CacheSpec::Local {
                dir: "/tmp/c".into(),
                tag: "latest".into(),
                mode_max: true
            }
        );
        assert_eq!(
            CacheSpec::parse_from("type=local,src=c,tag=ci").unwrap(),
            CacheSpec::Local {
                dir: "c".into(),
                tag: "ci".into(),
                mode_max: false
            }
        );
        assert!(CacheSpec::parse_to("type=local").is_err());
        assert!(CacheSpec::parse_to("type=local,src=/tmp").is_err());
        assert!(CacheSpec::parse_from("type=local,dest=/tmp").is_err());
        assert!(CacheSpec::parse_to("type=gha").is_err());
        assert!(CacheSpec::parse_to("type=registry,ref=x,mode=all").is_err());
    }

    /// Threads of this process named THREAD_NAME (from /proc).
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim() == THREAD_NAME)
            .count()
    }

    #[test]
    fn runtime_threads_exist_up_front() {
        let rt = quiet_runtime().unwrap();
        let started = threads();
        assert!(started >= BLOCKING_THREADS, "{started}");
        // Blocking work (as tokio::fs does) reuses them: no thread starts.
        rt.block_on(async {
            let hs: Vec<_> = (0..BLOCKING_THREADS * 2)
                .map(|_| {
                    tokio::task::spawn_blocking(|| {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        assert_eq!(threads(), started);
    }
}
