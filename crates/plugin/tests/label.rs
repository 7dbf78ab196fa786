//! `stspi_label_lsu` through the C interface: the label is stored in the LSU itself (not on the
//! media server), reported by `stspi_get_lsu_prop_byname` in `lsu_label` to every process,
//! replaced, removed, and refused when it is not a label; the record it lives in is not an image.

mod common;

use common::*;
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, lsu, Plugin, Status};

fn open(p: &Plugin) -> stsp_server_handle_t {
    p.open_server(SERVER, "nbuadmin", "harness-secret-Pa55").unwrap()
}

fn label_of(p: &Plugin, l: &sts_lsu_t) -> String {
    get_str(&p.lsu_prop(l).unwrap().lsu_label)
}

#[test]
fn label_is_kept_on_the_storage_and_read_back_by_every_process() {
    let f = fixture();
    let p = &f.plugin;
    let s = open(p);
    let l = lsu(s, "lsu2");
    assert_eq!(label_of(p, &l), "", "no label before one is set");

    p.label_lsu(&l, "Weekly fulls – site A").unwrap();
    assert_eq!(label_of(p, &l), "Weekly fulls – site A");
    let stored = f.mount().join("lsu2/.vast-ost/label");
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), "Weekly fulls – site A", "on the storage");
    assert_ne!(label_of(p, &lsu(s, "lsu1")), "Weekly fulls – site A", "the other LSU keeps its own");

    // Another process (a forked child opening its own server) reads what is on the storage.
    std::fs::write(&stored, "set elsewhere").unwrap();
    let child = fork_child(|| {
        let p = &fixture().plugin;
        let s = open(p);
        let got = label_of(p, &lsu(s, "lsu2"));
        p.close_server(s).unwrap();
        if got == "set elsewhere" {
            0
        } else {
            1
        }
    });
    let st = wait_child(child, std::time::Duration::from_secs(60)).expect("child ended");
    assert!(exited_ok(st), "the child read the label from the storage");

    p.label_lsu(&l, "relabelled").unwrap();
    assert_eq!(label_of(p, &l), "relabelled");
    assert!(p.images(&l, "").unwrap().is_empty(), "the label record is not an image");

    p.label_lsu(&l, "").unwrap();
    assert_eq!(label_of(p, &l), "", "an empty label removes it");
    assert!(!stored.exists());
    p.close_server(s).unwrap();
}

#[test]
fn bad_labels_are_refused_and_change_nothing() {
    let p = &fixture().plugin;
    let s = open(p);
    let l = lsu(s, "lsu1");
    p.label_lsu(&l, "kept").unwrap();
    assert_eq!(p.label_lsu(&l, &"x".repeat(STS_MAX_LSU_LABEL)), Err(Status(STS_E2BIG)));
    assert_eq!(p.label_lsu(&l, &"x".repeat(STS_MAX_LSU_LABEL - 1)), Ok(()), "the longest label fits");
    p.label_lsu(&l, "kept").unwrap();
    assert_eq!(p.label_lsu(&l, "two\nlines"), Err(Status(STS_EINVAL)));
    assert_eq!(p.label_lsu(&lsu(s, "nosuchlsu"), "x"), Err(Status(STS_ENOENT)));
    // SAFETY: a NULL label is what a careless host passes; the plug-in must refuse it.
    assert_eq!(unsafe { (p.raw().stspi_label_lsu)(&l, std::ptr::null()) }, STS_EINVAL);
    // SAFETY: as above, with a NULL LSU.
    assert_eq!(unsafe { (p.raw().stspi_label_lsu)(std::ptr::null(), c"x".as_ptr()) }, STS_EINVAL);
    assert_eq!(label_of(p, &l), "kept");
    p.close_server(s).unwrap();
}
