//! `conformance/known-differences.toml`: differences from BuildKit that are understood and
//! accepted for now, each with its case (or `*` for every case), JSON path and reason.

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Known {
    pub case: String,
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    difference: Vec<Known>,
}

/// Reads the file; a malformed file fails the test with toml's message (file, line, expected).
pub fn load(path: &Path) -> Vec<Known> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let file: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for k in &file.difference {
        assert!(
            !k.reason.trim().is_empty(),
            "{}: the difference {} {} has no reason",
            path.display(),
            k.case,
            k.path
        );
    }
    file.difference
}

impl Known {
    pub fn applies_to(&self, case: &str) -> bool {
        self.case == "*" || self.case == case
    }
}
