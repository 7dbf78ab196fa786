//! The engine's rooms stay in their order: each top-level module uses only modules of lower
//! layers (so there is no import cycle), and no source file grows past its size unless it says
//! it has one job. Read from the sources: every `crate::<module>` path, `use crate::{…}` groups
//! included. `docs/architecture.md` explains the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Low to high. A module may use modules of earlier layers only.
const LAYERS: &[&[&str]] = &[
    &["error", "plant", "util", "version"],
    &["names", "credentials", "filter", "retry", "http", "log"],
    &["layout"],
    &["manifest"],
    &["store", "vms"],
    &["control", "image"],
    &["config"],
    &["server"],
    &["replication"],
];

/// Lines a source file may have unless its module doc says it has "one job".
const MAX_LINES: usize = 450;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`store/s3/api.rs` → `store`); `None` for lib.rs.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib").then_some(name)
}

/// Every module named right after `crate::` in `text`, braces of a `use crate::{…}` included.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at commas outside nested braces.
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.insert(ident(item.trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// The graph of top-level modules: who uses whom.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(m) = module_of(&src, &f) else { continue };
        // Code only: a doc link to a higher room is a pointer for the reader, not a dependency.
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let refs = crate_refs(&text);
        g.entry(m.clone()).or_default().extend(refs.into_iter().filter(|r| *r != m));
    }
    g
}

/// A cycle in `g`, if there is one (depth-first search, colours).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|x| x == m).unwrap();
                    let mut c = stack[start..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn layer(m: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&m))
}

#[test]
fn modules_form_no_cycle() {
    let g = graph();
    assert!(g.len() >= 10, "the scan found the modules: {g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle among the engine's modules: {}", c.join(" → "));
    }
}

#[test]
fn modules_use_only_lower_layers() {
    let mut bad = Vec::new();
    for (m, uses) in graph() {
        let Some(lm) = layer(&m) else {
            bad.push(format!("module '{m}' is in no layer of tests/layering.rs (add it where it belongs)"));
            continue;
        };
        for u in uses {
            match layer(&u) {
                Some(lu) if lu < lm => {}
                Some(_) => bad.push(format!("'{m}' (layer {lm}) uses '{u}' (layer {})", layer(&u).unwrap())),
                None => bad.push(format!("'{m}' uses '{u}', which is in no layer")),
            }
        }
    }
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn files_stay_small_or_say_they_have_one_job() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let doc: String = text.lines().take_while(|l| l.starts_with("//!")).collect::<Vec<_>>().join(" ");
        if text.lines().count() > MAX_LINES && !doc.to_lowercase().contains("one job") {
            bad.push(format!("{} has {} lines", f.display(), text.lines().count()));
        }
        if doc.is_empty() {
            bad.push(format!("{} has no module doc saying what the room is for", f.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The checks above would see a cycle and a reference in a `use crate::{…}` group.
#[test]
fn the_checker_sees_what_it_guards() {
    let refs = crate_refs("use crate::{a, b::{C, D}, e::f};\nfn x() { crate::g::h(); }\n");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["a", "b", "e", "g"]);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert!(find_cycle(&g).is_none());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}
