//! Docker-shaped views of the store: what `docker images`, `docker image inspect` and
//! `docker history` print, built as strings and JSON values so the binary only prints them.

use serde::Serialize;
use serde_json::{Value, json};

use crate::display::{created_at, ellipsis, human_size, since, table};
use crate::{
    ContainerConfig, Digest, Error, History, Image, ImageSummary, Reference, Result, Store,
};

/// The images matching `docker images [REPOSITORY[:TAG]] [-f KEY=VALUE]...`.
pub fn list_images(
    store: &Store,
    repository: Option<&str>,
    filters: &[String],
) -> Result<Vec<ImageSummary>> {
    let mut rows = store.list_images()?;
    // Docker's size (uncompressed layer content), the same in every store: see [`crate::df`].
    for row in &mut rows {
        if let Ok(size) = store
            .load_image(&row.manifest_digest)
            .and_then(|img| crate::df::image_size(store, &img))
        {
            row.size = size;
        }
    }
    if let Some(r) = repository {
        let want = Reference::parse(r)?;
        let explicit_tag = r.rsplit('/').next().is_some_and(|l| l.contains(':'));
        rows.retain(|row| {
            row.name.as_ref().is_some_and(|n| {
                n.repository() == want.repository() && (!explicit_tag || n.tag == want.tag)
            })
        });
    }
    for f in filters {
        let (key, value) = f
            .split_once('=')
            .ok_or_else(|| Error::Other(format!("bad filter {f:?}: expected KEY=VALUE")))?;
        match key {
            "dangling" => {
                let want = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    v => {
                        return Err(Error::Other(format!(
                            "invalid filter 'dangling={v}': expected true or false"
                        )));
                    }
                };
                rows.retain(|r| r.name.is_none() == want);
            }
            "reference" => rows.retain(|r| {
                r.name.as_ref().is_some_and(|n| {
                    glob(value, &n.familiar())
                        || glob(value, &n.familiar_repository())
                        || glob(value, &n.to_string())
                })
            }),
            "label" => {
                let (k, v) = value
                    .split_once('=')
                    .map_or((value, None), |(k, v)| (k, Some(v)));
                rows.retain(|r| {
                    store.load_image(&r.manifest_digest).is_ok_and(|img| {
                        let labels = img.config.config.and_then(|c| c.labels).unwrap_or_default();
                        labels.get(k).is_some_and(|x| v.is_none_or(|v| v == x))
                    })
                });
            }
            other => return Err(Error::Other(format!("invalid filter '{other}'"))),
        }
    }
    Ok(rows)
}

/// Shell-style `*` wildcard match (`*` does not cross `/`, as Docker's path.Match).
pub fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(tail) = s.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .take_while(|&i| i == 0 || !tail[..i].contains('/'))
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// How `docker images` shows its rows.
#[derive(Clone, Debug, Default)]
pub struct ImagesView {
    pub quiet: bool,
    pub no_trunc: bool,
    pub digests: bool,
    /// "table" or "json" (`{{json .}}` too).
    pub format: String,
}

fn short_or_full(d: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        d.to_string()
    } else {
        d.short().to_string()
    }
}

/// `docker images` output for `rows`: IDs only (deduplicated), a table, or JSON lines.
pub fn render_images(rows: &[ImageSummary], view: &ImagesView) -> Result<String> {
    let id = |d: &Digest| short_or_full(d, view.no_trunc);
    let mut out = String::new();
    if view.quiet {
        let mut seen = Vec::new();
        for r in rows {
            let s = id(&r.id);
            if !seen.contains(&s) {
                out.push_str(&s);
                out.push('\n');
                seen.push(s);
            }
        }
        return Ok(out);
    }
    let repo_tag = |r: &ImageSummary| match &r.name {
        Some(n) => (
            n.familiar_repository(),
            n.tag.clone().unwrap_or_else(|| "<none>".into()),
        ),
        None => ("<none>".into(), "<none>".into()),
    };
    match view.format.as_str() {
        "json" | "{{json .}}" => {
            for r in rows {
                let (repo, tag) = repo_tag(r);
                let size = human_size(r.size);
                let line = json!({
                    "Containers": "N/A",
                    "CreatedAt": created_at(r.created.as_deref()),
                    "CreatedSince": since(r.created.as_deref()),
                    "Digest": r.manifest_digest.to_string(),
                    "ID": id(&r.id),
                    "Repository": repo,
                    "SharedSize": "N/A",
                    "Size": size,
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": size,
                });
                out.push_str(&format!("{line}\n"));
            }
        }
        "table" => {
            let mut header: Vec<String> = vec!["REPOSITORY".into(), "TAG".into()];
            if view.digests {
                header.push("DIGEST".into());
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"].map(String::from));
            let mut t = vec![header];
            for r in rows {
                let (repo, tag) = repo_tag(r);
                let mut row = vec![repo, tag];
                if view.digests {
                    row.push(r.manifest_digest.to_string());
                }
                row.extend([id(&r.id), since(r.created.as_deref()), human_size(r.size)]);
                t.push(row);
            }
            out.push_str(&table(&t));
        }
        other => {
            return Err(Error::Other(format!(
                "unsupported --format {other:?} (expected \"table\" or \"json\")"
            )));
        }
    }
    Ok(out)
}

/// `docker image inspect`'s JSON for one image (fields in Docker's order).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    docker_version: String,
    author: String,
    config: ContainerConfig,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    size: u64,
    graph_driver: Value,
    #[serde(rename = "RootFS")]
    root_fs: Value,
    metadata: Value,
    descriptor: Value,
}

/// What `docker image inspect` shows for `img`.
pub fn inspect(store: &Store, img: &Image) -> Result<Inspect> {
    let c = &img.config;
    // An image picked from an index is shown as Docker's containerd store shows it: under the
    // index's digest and descriptor, with the picked platform's config.
    let entry = img.entry_digest();
    Ok(Inspect {
        id: img
            .index_digest
            .clone()
            .unwrap_or(img.config_digest.clone())
            .to_string(),
        repo_tags: img.names.iter().map(|n| n.familiar()).collect(),
        repo_digests: img
            .names
            .iter()
            .map(|n| format!("{}@{}", n.familiar_repository(), entry))
            .collect(),
        parent: String::new(),
        comment: c
            .history
            .last()
            .and_then(|h| h.comment.clone())
            .unwrap_or_default(),
        created: c.created.clone().unwrap_or_default(),
        docker_version: String::new(),
        author: c.author.clone().unwrap_or_default(),
        config: c.config.clone().unwrap_or_default(),
        architecture: c.architecture.clone(),
        variant: c.variant.clone(),
        os: c.os.clone(),
        size: crate::df::image_size(store, img).unwrap_or_else(|_| store.image_size(img)),
        graph_driver: json!({ "Data": null, "Name": "overlay2" }),
        root_fs: json!({ "Type": c.rootfs.kind, "Layers": c.rootfs.diff_ids }),
        metadata: json!({ "LastTagTime": "0001-01-01T00:00:00Z" }),
        descriptor: json!({
            "mediaType": store
                .document_media_type(entry)
                .unwrap_or_else(|| crate::media_type::MANIFEST.into()),
            "digest": entry.to_string(),
            "size": store.blob_size(entry)?,
        }),
    })
}

/// How `docker history` shows an image.
#[derive(Clone, Debug)]
pub struct HistoryView {
    pub no_trunc: bool,
    pub quiet: bool,
    /// Sizes and dates for humans (`-H`, Docker's default).
    pub human: bool,
    /// "table" or "json".
    pub format: String,
}

impl HistoryView {
    fn size(&self, s: u64) -> String {
        if self.human {
            human_size(s)
        } else {
            s.to_string()
        }
    }
}

/// `docker history` output: newest entry first, the image ID on it and `<missing>` below. Layer
/// sizes are Docker's (see [`crate::df`]), the same in every store.
pub fn render_history(store: &Store, img: &Image, view: &HistoryView) -> String {
    let layers = img.manifest.layers();
    let diff_ids = &img.config.rootfs.diff_ids;
    let mut li = 0;
    let mut rows = Vec::new();
    for h in &img.config.history {
        let size = if h.empty_layer {
            0
        } else {
            li += 1;
            diff_ids
                .get(li - 1)
                .and_then(|d| crate::df::layer_size(store, d).ok())
                .or_else(|| layers.get(li - 1).map(|l| l.size()))
                .unwrap_or(0)
        };
        rows.push((h, size));
    }
    rows.reverse();
    let id = short_or_full(&img.config_digest, view.no_trunc);
    let ids: Vec<String> = (0..rows.len())
        .map(|i| {
            if i == 0 {
                id.clone()
            } else {
                "<missing>".into()
            }
        })
        .collect();
    let mut out = String::new();
    if view.quiet {
        ids.iter().for_each(|i| out.push_str(&format!("{i}\n")));
        return out;
    }
    let created = |h: &History| {
        if view.human {
            since(h.created.as_deref())
        } else {
            h.created.clone().unwrap_or_default()
        }
    };
    let created_by = |h: &History| {
        let s = h.created_by.clone().unwrap_or_default();
        if view.no_trunc { s } else { ellipsis(&s, 45) }
    };
    if view.format == "json" || view.format == "{{json .}}" {
        for (i, (h, s)) in rows.iter().enumerate() {
            let line = json!({
                "Comment": h.comment.clone().unwrap_or_default(),
                "CreatedAt": h.created.clone().unwrap_or_default(),
                "CreatedBy": created_by(h),
                "CreatedSince": since(h.created.as_deref()),
                "ID": ids[i],
                "Size": view.size(*s),
            });
            out.push_str(&format!("{line}\n"));
        }
        return out;
    }
    let mut t = vec![
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .map(String::from)
            .to_vec(),
    ];
    for (i, (h, s)) in rows.iter().enumerate() {
        t.push(vec![
            ids[i].clone(),
            created(h),
            created_by(h),
            view.size(*s),
            h.comment.clone().unwrap_or_default(),
        ]);
    }
    table(&t)
}

/// `history --layers`: each layer with the bytes later layers delete or overwrite, then the
/// wasted files themselves, largest first.
pub fn render_history_layers(store: &Store, img: &Image, view: &HistoryView) -> Result<String> {
    let report = crate::waste::analyze(store, img)?;
    let created_by: Vec<String> = img
        .config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| {
            let s = h
                .created_by
                .clone()
                .filter(|s| !s.is_empty())
                .or_else(|| h.comment.clone())
                .unwrap_or_default();
            if view.no_trunc { s } else { ellipsis(&s, 45) }
        })
        .collect();
    let blobs = img.manifest.layers();
    let mut t = vec![
        ["LAYER", "DIFF ID", "CREATED BY", "SIZE", "WASTED"]
            .map(String::from)
            .to_vec(),
    ];
    for (i, l) in report.layers.iter().enumerate() {
        t.push(vec![
            (i + 1).to_string(),
            short_or_full(&l.diff_id, view.no_trunc),
            created_by.get(i).cloned().unwrap_or_default(),
            view.size(blobs.get(i).map(|b| b.size()).unwrap_or(l.content)),
            view.size(l.wasted),
        ]);
    }
    let mut out = table(&t);
    let n = report.files.len();
    if n == 0 {
        out.push_str(
            "\nNo wasted space: no layer deletes or overwrites a file of a layer below it.\n",
        );
        return Ok(out);
    }
    out.push_str(&format!(
        "\nWasted space: {} in {n} file{} a later layer deletes or overwrites (still shipped in the layer that added it):\n",
        view.size(report.total()),
        if n == 1 { "" } else { "s" }
    ));
    let mut t = vec![
        ["SIZE", "PATH", "ADDED BY", "REMOVED BY"]
            .map(String::from)
            .to_vec(),
    ];
    for f in &report.files {
        t.push(vec![
            view.size(f.size),
            f.path.clone(),
            format!("layer {}", f.layer + 1),
            format!(
                "layer {} ({})",
                f.by_layer + 1,
                if f.deleted { "deleted" } else { "overwritten" }
            ),
        ]);
    }
    out.push_str(&table(&t));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_stars_stop_at_slashes() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("*box:latest", "busybox:latest"));
        assert!(glob("*", "busybox"));
        assert!(!glob("*", "library/busybox"));
        assert!(glob("*/busybox", "library/busybox"));
        assert!(!glob("busy*", "other"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("exact", "exactly"));
    }
}
