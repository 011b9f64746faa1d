//! Layer waste (`hoist history --layers`): files a layer adds that a later layer deletes (whiteout
//! or opaque directory) or overwrites. Their bytes are still shipped in the earlier layer, which
//! is why a temp file "deleted" in a later RUN still makes an image big.

use std::collections::BTreeMap;
use std::io::Read;

use crate::store::{Image, Store};
use crate::{Digest, Result};

/// A file whose bytes are dead weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WastedFile {
    /// Absolute path in the image.
    pub path: String,
    /// Bytes it occupies in `layer` (uncompressed).
    pub size: u64,
    /// Index (0 = bottom) of the layer that added it.
    pub layer: usize,
    /// Index of the layer that deleted or overwrote it.
    pub by_layer: usize,
    /// Deleted (true) or overwritten (false).
    pub deleted: bool,
}

/// One layer of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerWaste {
    pub diff_id: Digest,
    /// Bytes of file content the layer adds.
    pub content: u64,
    /// Of those, bytes later layers delete or overwrite.
    pub wasted: u64,
    /// Files added, deleted (whiteouts) by this layer.
    pub files: usize,
    pub deletions: usize,
}

/// The whole report, layers bottom first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WasteReport {
    pub layers: Vec<LayerWaste>,
    /// Sorted by size, largest first.
    pub files: Vec<WastedFile>,
}

impl WasteReport {
    /// Total wasted bytes.
    pub fn total(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

enum Change {
    Add { path: String, size: u64 },
    Delete(String),
    Opaque(String),
}

/// Makes `./a//b/` into `/a/b`.
pub(crate) fn clean(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn under(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.starts_with(&format!("{dir}/"))
}

fn read_changes(r: impl Read) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(r);
    let io = |e: std::io::Error| crate::Error::Io {
        context: "reading a layer".into(),
        error: e,
    };
    for e in ar.entries().map_err(io)? {
        let e = e.map_err(io)?;
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let path = clean(&raw);
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
            None => ("/", path.as_str()),
        };
        if name == ".wh..wh..opq" {
            out.push(Change::Opaque(dir.to_string()));
        } else if let Some(target) = name.strip_prefix(".wh.") {
            out.push(Change::Delete(clean(&format!("{dir}/{target}"))));
        } else if e.header().entry_type().is_dir() {
            continue;
        } else {
            let size = if e.header().entry_type().is_file() {
                e.header().size().unwrap_or(0)
            } else {
                0
            };
            out.push(Change::Add { path, size });
        }
    }
    Ok(out)
}

/// Removes the live files matching `pred`, recording them as wasted by layer `by`.
fn kill(
    live: &mut BTreeMap<String, (usize, u64)>,
    report: &mut WasteReport,
    by: usize,
    pred: &dyn Fn(&str) -> bool,
    deleted: bool,
) {
    let doomed: Vec<String> = live.keys().filter(|p| pred(p)).cloned().collect();
    for p in doomed {
        let (layer, size) = live.remove(&p).expect("listed");
        if size > 0 {
            report.layers[layer].wasted += size;
            report.files.push(WastedFile {
                path: p,
                size,
                layer,
                by_layer: by,
                deleted,
            });
        }
    }
}

/// Analyses an image's layers.
pub fn analyze(store: &Store, image: &Image) -> Result<WasteReport> {
    let mut live: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut report = WasteReport::default();
    for (i, (diff_id, _)) in image.layers()?.into_iter().enumerate() {
        let changes = read_changes(store.open_layer(&diff_id)?)?;
        let mut lw = LayerWaste {
            diff_id,
            content: 0,
            wasted: 0,
            files: 0,
            deletions: 0,
        };
        report.layers.push(lw.clone());
        // Deletions apply to lower layers only, whatever their order in the tar.
        for c in &changes {
            match c {
                Change::Delete(p) => {
                    lw.deletions += 1;
                    kill(&mut live, &mut report, i, &|x| under(x, p), true);
                }
                Change::Opaque(d) => {
                    kill(&mut live, &mut report, i, &|x| under(x, d) && x != d, true)
                }
                Change::Add { .. } => {}
            }
        }
        for c in changes {
            if let Change::Add { path, size } = c {
                kill(&mut live, &mut report, i, &|x| x == path, false);
                lw.files += 1;
                lw.content += size;
                live.insert(path, (i, size));
            }
        }
        lw.wasted = report.layers[i].wasted;
        report.layers[i] = lw;
    }
    report
        .files
        .sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImageConfig, LayerOptions};

    #[test]
    fn deleted_overwritten_and_opaque() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("store")).unwrap();
        let mk = |files: &[(&str, &[u8])]| {
            let d = tempfile::tempdir().unwrap();
            for (p, c) in files {
                let p = d.path().join(p);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, c).unwrap();
            }
            store
                .commit_dir(d.path(), &LayerOptions::default())
                .unwrap()
        };
        let l1 = mk(&[
            ("big", &[0u8; 1000]),
            ("keep", b"k"),
            ("d/a", b"aa"),
            ("c", b"1"),
        ]);
        // Layer 2: a whiteout for /big, an opaque /d, and /c again.
        let l2 = mk(&[
            (".wh.big", b""),
            ("d/.wh..wh..opq", b""),
            ("d/new", b"n"),
            ("c", b"22"),
        ]);
        let mut config = ImageConfig::default();
        config.rootfs.diff_ids = vec![l1.diff_id.clone(), l2.diff_id.clone()];
        let img = store
            .write_image(&config, &[l1.descriptor(), l2.descriptor()], &[])
            .unwrap();
        let r = analyze(&store, &img).unwrap();
        let files: Vec<(&str, u64, bool)> = r
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.size, f.deleted))
            .collect();
        assert_eq!(
            files,
            [("/big", 1000, true), ("/d/a", 2, true), ("/c", 1, false)]
        );
        assert_eq!(r.layers[0].wasted, 1003);
        assert_eq!(r.layers[1].wasted, 0);
        assert_eq!(r.layers[1].deletions, 1);
        assert_eq!(r.total(), 1003);
    }
}
