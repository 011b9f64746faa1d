//! Structural differences between two JSON dumps, each named by a path such as
//! `config.Env`, `history[2].created_by` or `files["/etc/hosts"].mode`.

use serde_json::Value;

/// One place where the dumps disagree; `None` is a missing value.
#[derive(Debug)]
pub struct Difference {
    pub path: String,
    pub golden: Option<Value>,
    pub got: Option<Value>,
}

fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::from(key)),
    }
}

/// Every difference between `golden` and `got`. Arrays of scalars (Env, Cmd) compare whole;
/// arrays of objects (history) element by element.
pub fn diff(golden: &Value, got: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("", Some(golden), Some(got), &mut out);
    out
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Difference>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(&key_path(path, k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y)))
            if x.iter().chain(y).any(|v| v.is_object() || v.is_array()) =>
        {
            for i in 0..x.len().max(y.len()) {
                walk(&format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        (a, b) if a != b => out.push(Difference {
            path: path.to_string(),
            golden: a.cloned(),
            got: b.cloned(),
        }),
        _ => {}
    }
}

/// Whether a listed path covers `path` (itself, or anything under it).
pub fn covers(listed: &str, path: &str) -> bool {
    path.strip_prefix(listed)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

fn show(v: &Option<Value>) -> String {
    v.as_ref().map_or("(absent)".into(), |v| v.to_string())
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n      buildkit: {}\n      hoist:    {}",
            self.path,
            show(&self.golden),
            show(&self.got)
        )
    }
}

#[test]
fn paths_name_each_difference() {
    let a = serde_json::json!({"config": {"Env": ["A=1"], "User": "x"},
        "files": {"/a": {"mode": "0644"}}, "history": [{"c": 1}]});
    let b = serde_json::json!({"config": {"Env": ["A=2"]},
        "files": {"/a": {"mode": "0600"}, "/b": {}}, "history": [{"c": 1}, {"c": 2}]});
    let paths: Vec<String> = diff(&a, &b).into_iter().map(|d| d.path).collect();
    assert_eq!(
        paths,
        [
            "config.Env",
            "config.User",
            "files[\"/a\"].mode",
            "files[\"/b\"]",
            "history[1]"
        ]
    );
    assert!(covers("files[\"/a\"]", "files[\"/a\"].mode"));
    assert!(!covers("files[\"/a\"]", "files[\"/ab\"]"));
    assert!(!covers("config.User", "config.UserX"));
}
