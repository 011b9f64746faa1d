//! `hoist image diff A B`: what differs between two images, as a user sees them. Files come from
//! each image's merged filesystem ([`crate::tree_dump::merged_tree`]): added, removed, or changed
//! in content, type, mode, owner, link target, device or xattrs. Config differences are listed per
//! field, and per entry for the map-like fields (`Env` by name, `Labels`, `ExposedPorts`,
//! `Volumes`), so a changed variable reads `Env FOO: "1" -> "2"`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::store::{Image, Store};
use crate::tree_dump::{Node, merged_tree};
use crate::{Error, Result};

/// One path that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// `A` (only in B), `D` (only in A) or `C` (in both, different).
    pub change: &'static str,
    pub path: String,
    /// For `C`: what changed, e.g. `content`, `mode 0644->0755`, `owner 0:0->1000:1000`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// One config field (or one entry of a map-like field) that differs. `None` means absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// Everything that differs from image A to image B.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImageDiff {
    pub files: Vec<FileChange>,
    pub config: Vec<ConfigChange>,
}

/// Compares `a` with `b` (changes read as "from A to B").
pub fn diff(store: &Store, a: &Image, b: &Image) -> Result<ImageDiff> {
    let ta = merged_tree(store, a)?;
    let tb = merged_tree(store, b)?;
    Ok(ImageDiff {
        files: diff_trees(&ta, &tb),
        config: diff_configs(&config_value(a)?, &config_value(b)?),
    })
}

/// Path-by-path differences of two merged filesystems, in path order.
pub fn diff_trees(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) -> Vec<FileChange> {
    let paths: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for p in paths {
        let (change, details) = match (a.get(p), b.get(p)) {
            (Some(_), None) => ("D", Vec::new()),
            (None, Some(_)) => ("A", Vec::new()),
            (Some(x), Some(y)) => {
                let d = node_changes(x, y);
                if d.is_empty() {
                    continue;
                }
                ("C", d)
            }
            (None, None) => continue,
        };
        out.push(FileChange {
            change,
            path: p.clone(),
            details,
        });
    }
    out
}

/// What differs between two nodes at the same path; empty if nothing a user could see.
fn node_changes(a: &Node, b: &Node) -> Vec<String> {
    let mut d = Vec::new();
    if a.kind != b.kind {
        d.push(format!("type {}->{}", a.kind, b.kind));
    } else if a.sha256 != b.sha256 || a.size != b.size {
        d.push("content".into());
    }
    if a.mode != b.mode {
        d.push(format!("mode {}->{}", a.mode, b.mode));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        d.push(format!("owner {}:{}->{}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if a.kind == b.kind && a.link != b.link {
        let s = |l: &Option<String>| l.clone().unwrap_or_default();
        d.push(format!("link {}->{}", s(&a.link), s(&b.link)));
    }
    if a.kind == b.kind && a.dev != b.dev {
        let s = |l: &Option<String>| l.clone().unwrap_or_default();
        d.push(format!("dev {}->{}", s(&a.dev), s(&b.dev)));
    }
    if a.xattrs != b.xattrs {
        d.push("xattrs".into());
    }
    d
}

/// Docker's `config` object plus the image-level platform and author fields, as one object.
fn config_value(image: &Image) -> Result<Map<String, Value>> {
    let v = serde_json::to_value(&image.config).map_err(|e| Error::Other(e.to_string()))?;
    let Value::Object(mut top) = v else {
        return Ok(Map::new());
    };
    let mut out = match top.remove("config") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    for k in ["architecture", "os", "variant", "os.version", "author"] {
        if let Some(v) = top.remove(k).filter(|v| !v.is_null()) {
            out.insert(k.to_string(), v);
        }
    }
    out.retain(|_, v| !is_empty(v));
    Ok(out)
}

/// Docker treats null, `""`, `[]` and `{}` as "not set".
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Field-by-field differences of two config objects, in field order.
pub fn diff_configs(a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<ConfigChange> {
    let fields: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for f in fields {
        let (x, y) = (a.get(f), b.get(f));
        if x == y {
            continue;
        }
        let keyed = |v: Option<&Value>| -> Option<BTreeMap<String, Value>> {
            match v {
                None => Some(BTreeMap::new()),
                Some(Value::Object(o)) => Some(o.clone().into_iter().collect()),
                Some(Value::Array(items)) if f == "Env" => Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|e| {
                            let (k, v) = e.split_once('=').unwrap_or((e, ""));
                            (k.to_string(), Value::from(v))
                        })
                        .collect(),
                ),
                _ => None,
            }
        };
        let by_key = ["Env", "Labels", "ExposedPorts", "Volumes"].contains(&f.as_str());
        match (by_key, keyed(x), keyed(y)) {
            (true, Some(ka), Some(kb)) => {
                let keys: BTreeSet<&String> = ka.keys().chain(kb.keys()).collect();
                for k in keys {
                    if ka.get(k) != kb.get(k) {
                        out.push(ConfigChange {
                            field: f.clone(),
                            key: Some(k.clone()),
                            old: ka.get(k).cloned(),
                            new: kb.get(k).cloned(),
                        });
                    }
                }
            }
            _ => out.push(ConfigChange {
                field: f.clone(),
                key: None,
                old: x.cloned(),
                new: y.cloned(),
            }),
        }
    }
    out
}

/// The readable form: one line per path (`A /p`, `D /p`, `C /p (content, mode 0644->0755)`), then
/// one line per config difference.
pub fn render(d: &ImageDiff) -> String {
    let mut s = String::new();
    for f in &d.files {
        if f.details.is_empty() {
            let _ = writeln!(s, "{} {}", f.change, f.path);
        } else {
            let _ = writeln!(s, "{} {} ({})", f.change, f.path, f.details.join(", "));
        }
    }
    let show = |v: &Option<Value>| v.as_ref().map_or("<unset>".to_string(), Value::to_string);
    for c in &d.config {
        let name = match &c.key {
            Some(k) => format!("{} {k}", c.field),
            None => c.field.clone(),
        };
        let _ = writeln!(s, "config {name}: {} -> {}", show(&c.old), show(&c.new));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn env_and_labels_differ_per_entry_other_fields_whole() {
        let a = obj(json!({"Env": ["PATH=/bin", "A=1", "GONE=x"], "Cmd": ["sh"],
            "Labels": {"l": "1"}, "User": "root"}));
        let b = obj(
            json!({"Env": ["PATH=/bin", "A=2", "NEW=y"], "Cmd": ["sh", "-c", "x"],
            "Labels": {"l": "1", "m": "2"}, "WorkingDir": "/app"}),
        );
        let out = render(&ImageDiff {
            files: vec![],
            config: diff_configs(&a, &b),
        });
        assert_eq!(
            out,
            "config Cmd: [\"sh\"] -> [\"sh\",\"-c\",\"x\"]\n\
             config Env A: \"1\" -> \"2\"\n\
             config Env GONE: \"x\" -> <unset>\n\
             config Env NEW: <unset> -> \"y\"\n\
             config Labels m: <unset> -> \"2\"\n\
             config User: \"root\" -> <unset>\n\
             config WorkingDir: <unset> -> \"/app\"\n"
        );
    }
}
