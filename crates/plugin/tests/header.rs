//! The checked-in C headers must be what cbindgen makes of the sources now.

use std::path::{Path, PathBuf};

fn generate(crate_dir: &Path, out: &Path) -> bool {
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen runs")
        .write(&mut generated);
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(out, &generated).unwrap();
    }
    std::fs::read(out).unwrap_or_default() == generated
}

#[test]
fn checked_in_headers_are_current() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let include = here.join("../../include");
    for (krate, header) in [("../ost-abi", "ost_abi.h"), (".", "stspi_vastdata.h")] {
        assert!(
            generate(&here.join(krate), &include.join(header)),
            "include/{header} is stale: run UPDATE_HEADER=1 cargo test -p vast-ost-plugin --test header"
        );
    }
}

/// Every status code in the header has its row, with the same value, in docs/interface.md.
#[test]
fn status_table_in_docs_matches_header() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(here.join("../../include/ost_abi.h")).unwrap();
    let docs = std::fs::read_to_string(here.join("../../docs/interface.md")).unwrap();
    let mut n = 0;
    for line in header.lines() {
        let mut w = line.split_whitespace();
        if let (Some("#define"), Some(sym), Some(val)) = (w.next(), w.next(), w.next()) {
            // STS_EVT_* are event types, not statuses.
            if sym.starts_with("STS_E") && sym != "STS_ERR_BASE" && !sym.starts_with("STS_EVT_") {
                let row = format!("| {val} | `{sym}` |");
                assert!(docs.contains(&row), "docs/interface.md lacks the row {row}");
                n += 1;
            }
        }
    }
    assert!(n >= 20, "only {n} status codes found in the header");
}
