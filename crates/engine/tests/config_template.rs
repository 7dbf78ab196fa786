//! The commented config template the packages install (`packaging/vast-ost.toml`, at
//! `/usr/openv/lib/ost-plugins/vast-ost.toml`): valid as shipped (no server), valid with every
//! setting uncommented, naming every key of the README's example and every key the admin
//! guide must explain.

use std::collections::BTreeSet;
use std::path::Path;

use vast_ost_engine::config::Config;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)).unwrap()
}

/// A settings line of the template: `#` then a key or a table header (prose is `# …`).
fn uncommented(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?;
    rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[').then_some(rest)
}

/// The `key =` names of TOML lines (comments and table headers skipped).
fn keys<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    lines
        .filter_map(|l| {
            let l = l.trim_start();
            let key = l.split('=').next()?.trim();
            (l.contains('=')
                && !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then(|| key.to_string())
        })
        .collect()
}

fn template_keys() -> BTreeSet<String> {
    keys(read("packaging/vast-ost.toml").lines().filter_map(uncommented))
}

#[test]
fn template_parses_as_shipped_and_uncommented() {
    let text = read("packaging/vast-ost.toml");
    let cfg = Config::parse(&text, Path::new("vast-ost.toml")).unwrap();
    assert!(cfg.servers.is_empty() && cfg.cache_dir.is_none(), "the template configures nothing");
    let on: String = text.lines().map(|l| format!("{}\n", uncommented(l).unwrap_or(l))).collect();
    let cfg =
        Config::parse(&on, Path::new("vast-ost.toml (uncommented)")).unwrap_or_else(|e| panic!("{e}\n{on}"));
    let s = &cfg.servers[0];
    assert!(s.vms.is_some() && s.nfs.is_some() && s.s3.is_some() && cfg.cache_dir.is_some());
}

#[test]
fn template_names_every_key_of_the_readme_example() {
    let readme = read("README.md");
    let block = readme
        .split("```toml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("[[server]]"))
        .unwrap();
    // Commented keys of the example count too (`# insecure = true`).
    let example = keys(block.lines().map(|l| l.trim_start().trim_start_matches(['#', ' '])));
    let template = template_keys();
    let missing: Vec<_> = example.difference(&template).collect();
    assert!(missing.is_empty(), "keys of the README example missing from the template: {missing:?}");
}

#[test]
fn admin_guide_explains_every_key_of_the_template() {
    let guide = read("docs/admin-guide.md");
    let missing: Vec<String> =
        template_keys().into_iter().filter(|k| !guide.contains(&format!("`{k}`"))).collect();
    assert!(missing.is_empty(), "keys of the template the admin guide does not explain: {missing:?}");
}
