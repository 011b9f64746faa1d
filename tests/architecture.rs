//! The workspace's shape, checked on every test run (issue 17; see ARCHITECTURE.md):
//! - no import cycles between sibling modules of any crate (`a.rs` naming `crate::b` while `b.rs` names
//!   `crate::a`, at any depth: edges are lifted to the children of the two modules' common ancestor);
//! - no source file over 800 lines unless it is listed below as one concern;
//! - each crate's root says, in its opening `//!` comment, what it owns and what it must not touch;
//! - no test reaches into another crate's files with `#[path = "../..."]` (shared helpers live in
//!   the `hoist-test-support` crate or in the test directory's own `common/`).
//!
//! The scan is lexical (comments, strings and char literals are skipped; `use` trees are expanded),
//! which is all module-level dependencies need: macros that name paths inside their arguments are
//! still seen, since paths are found anywhere in code.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const CRATES: &[&str] = &[
    ".",
    "parser",
    "builder",
    "image",
    "registry",
    "runtime",
    "serve",
    "test-support",
];
const MAX_LINES: usize = 800;

/// Files allowed past MAX_LINES, with why each is still one concern.
const LONG_FILES: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as paths relative to it.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The module a file defines: `lib.rs` -> [], `a/mod.rs` -> [a], `a/b.rs` -> [a, b].
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// Source with comments, string and char literals blanked out (lifetimes kept).
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' if (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
                && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                'raw: while j < c.len() {
                    if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break 'raw;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' => {
                if c.get(i + 1) == Some(&'\\') {
                    let mut j = i + 2;
                    while j < c.len() && c[j] != '\'' {
                        j += 1;
                    }
                    i = j + 1;
                    out.push_str("' '");
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// `a::{b, c::{d as e}}` -> ["a::b", "a::c::d"].
fn expand_use(tree: &str) -> Vec<String> {
    // Drop `as alias` (the alias is a local name, not a module), then all whitespace.
    let mut t = String::new();
    let words = tree.split_inclusive(|c: char| c.is_whitespace() || matches!(c, '{' | '}' | ','));
    let mut skip_next = false;
    for w in words {
        let word = w.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '{' | '}' | ','));
        let tail = &w[word.len()..];
        if skip_next && !word.is_empty() {
            skip_next = false;
            t.extend(tail.chars().filter(|c| !c.is_whitespace()));
            continue;
        }
        if word == "as" {
            skip_next = true;
            continue;
        }
        t.push_str(word);
        t.extend(tail.chars().filter(|c| !c.is_whitespace()));
    }
    let mut out = Vec::new();
    expand_into(String::new(), &t, &mut out);
    out
}

fn expand_into(prefix: String, t: &str, out: &mut Vec<String>) {
    match t.find('{') {
        Some(open) if t.ends_with('}') => {
            let head = &t[..open];
            let body = &t[open + 1..t.len() - 1];
            let mut depth = 0;
            let mut start = 0;
            for (k, ch) in body.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand_into(format!("{prefix}{head}"), &body[start..k], out);
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            if start < body.len() {
                expand_into(format!("{prefix}{head}"), &body[start..], out);
            }
        }
        _ => out.push(format!("{prefix}{t}")),
    }
}

/// Every path that starts at `crate`, `super` or `self`, from `use` trees and from code.
fn module_paths(src: &str) -> Vec<Vec<String>> {
    let code = code_only(src);
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    // `use` trees.
    let mut at = 0;
    while let Some(k) = code[at..].find("use ") {
        let s = at + k;
        at = s + 4;
        if s > 0 && is_ident(bytes[s - 1]) {
            continue;
        }
        let Some(end) = code[s..].find(';') else {
            break;
        };
        for p in expand_use(&code[s + 4..s + end]) {
            paths.push(p.split("::").map(str::to_string).collect());
        }
    }
    // Paths in code.
    let mut i = 0;
    while i < bytes.len() {
        if (i == 0 || !is_ident(bytes[i - 1]))
            && ["crate::", "super::", "self::"]
                .iter()
                .any(|k| code[i..].starts_with(k))
        {
            let mut j = i;
            while j < bytes.len() && (is_ident(bytes[j]) || code[j..].starts_with("::")) {
                j += if bytes[j] == b':' { 2 } else { 1 };
            }
            paths.push(
                code[i..j]
                    .trim_end_matches(':')
                    .split("::")
                    .map(str::to_string)
                    .collect(),
            );
            i = j;
        } else {
            i += 1;
        }
    }
    paths
}

/// The deepest existing module a path names, from the module `here`.
fn resolve(here: &[String], path: &[String], mods: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let (mut cur, rest) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("super" | "self") => {
            let mut cur = here.to_vec();
            let mut k = 0;
            while k < path.len() && matches!(path[k].as_str(), "super" | "self") {
                if path[k] == "super" {
                    cur.pop();
                }
                k += 1;
            }
            (cur, &path[k..])
        }
        _ => return None,
    };
    for seg in rest {
        let mut next = cur.clone();
        next.push(seg.clone());
        if !mods.contains(&next) {
            break;
        }
        cur = next;
    }
    Some(cur)
}

type Graph = BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>;

/// Sibling-level dependency edges of one crate's `src/`, each with a file that makes it.
fn sibling_graph(src_dir: &Path) -> Graph {
    let files = rust_files(src_dir);
    let mods: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut graph = Graph::new();
    for rel in &files {
        let here = module_of(rel);
        let src = fs::read_to_string(src_dir.join(rel)).unwrap();
        for p in module_paths(&src) {
            let Some(to) = resolve(&here, &p, &mods) else {
                continue;
            };
            let common = here.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == here.len() || common == to.len() {
                continue; // a module naming its ancestor or descendant is not a sibling edge
            }
            graph
                .entry(here[..=common].to_vec())
                .or_default()
                .entry(to[..=common].to_vec())
                .or_insert_with(|| format!("src/{}", rel.display()));
        }
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<Vec<String>>> {
    struct T<'g> {
        g: &'g Graph,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        on: BTreeSet<Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit(t: &mut T, v: &Vec<String>) {
        let n = t.index.len();
        t.index.insert(v.clone(), n);
        t.low.insert(v.clone(), n);
        t.stack.push(v.clone());
        t.on.insert(v.clone());
        let succ: Vec<Vec<String>> =
            t.g.get(v)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
        for w in succ {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let lw = t.low[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(&w) {
                let iw = t.index[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_import_cycles_between_sibling_modules() {
    let mut report = String::new();
    for krate in CRATES {
        let graph = sibling_graph(&root().join(krate).join("src"));
        for comp in cycles(&graph) {
            let set: BTreeSet<&Vec<String>> = comp.iter().collect();
            report += &format!(
                "{krate}: modules {:?} form a cycle:\n",
                comp.iter().map(|m| m.join("::")).collect::<Vec<_>>()
            );
            for a in &comp {
                for (b, file) in &graph[a] {
                    if set.contains(b) {
                        report +=
                            &format!("    {} -> {} (in {file})\n", a.join("::"), b.join("::"));
                    }
                }
            }
        }
    }
    assert!(report.is_empty(), "import cycles:\n{report}");
}

/// The checker itself: a two-file cycle is found, a child naming its parent is not a cycle.
#[test]
fn cycle_checker_sees_cycles_and_only_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir_all(src.join("solver")).unwrap();
    fs::write(
        src.join("lib.rs"),
        "pub mod a; pub mod b; pub mod solver; pub mod leaf;",
    )
    .unwrap();
    fs::write(
        src.join("a.rs"),
        "use crate::{b::Thing, leaf};\n// crate::solver in a comment\n",
    )
    .unwrap();
    fs::write(
        src.join("b.rs"),
        "fn f() { let s = \"crate::leaf\"; super::a::g(); }",
    )
    .unwrap();
    fs::write(
        src.join("leaf.rs"),
        "pub struct L<'a>(&'a str); const C: char = '\"';",
    )
    .unwrap();
    fs::write(
        src.join("solver/mod.rs"),
        "pub mod exec; pub mod mounts; pub use self::exec::E;",
    )
    .unwrap();
    fs::write(
        src.join("solver/exec.rs"),
        "use super::mounts::M; pub struct E;",
    )
    .unwrap();
    fs::write(src.join("solver/mounts.rs"), "pub struct M(super::E);").unwrap();
    let graph = sibling_graph(src);
    let found: Vec<Vec<String>> = cycles(&graph)
        .into_iter()
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
            names.sort();
            names
        })
        .collect();
    assert_eq!(
        found,
        vec![vec!["a".to_string(), "b".to_string()]],
        "{graph:?}"
    );
    // Comments and strings are not references; `leaf` is reached only from real code.
    assert!(!graph[&vec!["a".to_string()]].contains_key(&vec!["solver".to_string()]));
    assert!(
        !graph.contains_key(&vec!["b".to_string()])
            || !graph[&vec!["b".to_string()]].contains_key(&vec!["leaf".to_string()])
    );
}

#[test]
fn files_stay_small_or_are_one_concern() {
    let mut long = Vec::new();
    for krate in CRATES {
        let dir = root().join(krate).join("src");
        for rel in rust_files(&dir) {
            let name = Path::new(krate).join("src").join(&rel);
            let name = name
                .strip_prefix("./")
                .unwrap_or(&name)
                .display()
                .to_string();
            let lines = fs::read_to_string(dir.join(&rel)).unwrap().lines().count();
            if lines > MAX_LINES && !LONG_FILES.iter().any(|(f, _)| *f == name) {
                long.push(format!("{name}: {lines} lines"));
            }
        }
    }
    for (f, _) in LONG_FILES {
        let lines = fs::read_to_string(root().join(f))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        assert!(
            lines > MAX_LINES,
            "{f} is listed in LONG_FILES but has {lines} lines: drop it from the list"
        );
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split by concern, or list with a reason):\n{}",
        long.join("\n")
    );
}

#[test]
fn each_crate_says_what_it_owns() {
    for krate in CRATES.iter().filter(|c| **c != ".") {
        let lib = root().join(krate).join("src/lib.rs");
        let src = fs::read_to_string(&lib).unwrap();
        let doc: String = src
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase();
        assert!(
            doc.contains("owns") && doc.contains("must not"),
            "{}: the opening //! comment must say what the crate owns and what it must not touch",
            lib.display()
        );
    }
}

#[test]
fn tests_do_not_borrow_other_crates_files() {
    let mut found = Vec::new();
    for krate in CRATES {
        let dir = root().join(krate).join("tests");
        for rel in rust_files(&dir) {
            let src = fs::read_to_string(dir.join(&rel)).unwrap();
            for line in src
                .lines()
                .filter(|l| l.trim_start().starts_with("#[path") && l.contains("../"))
            {
                found.push(format!("{krate}/tests/{}: {}", rel.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "use the hoist-test-support crate instead:\n{}",
        found.join("\n")
    );
}
