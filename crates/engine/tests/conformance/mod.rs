//! The image conformance suite: what every data-path backend must do, written once and run
//! against each (`nfs.rs` here; S3 targets join as they arrive). A backend passes when
//! [`run_all`] passes on it.

mod shared;

use std::sync::Arc;

use vast_ost_engine::image::{self, CopyMode, ImageReader, ImageWriter};
use vast_ost_engine::manifest::{ImageDef, State, Writer, BLOCK_SIZE};
use vast_ost_engine::store::PieceStore;
use vast_ost_engine::ErrorKind;

/// What a backend's test gives the suite.
pub trait Target {
    fn store(&self) -> Arc<dyn PieceStore>;
    /// Two existing, empty LSUs.
    fn lsus(&self) -> (String, String);
    /// Flip one bit of byte `at` of a stored piece behind the plug-in's back (flipping it
    /// again restores the piece).
    fn flip_bit(&self, lsu: &str, key: &str, at: u64);
    /// Overwrite an image's stored manifest with `bytes`.
    fn put_raw_manifest(&self, lsu: &str, image: &str, bytes: &[u8]);
}

/// One conformance case: its name and the check.
pub type Case = (&'static str, fn(&dyn Target));

/// What a backend does with bytes: write, read, copy, detect damage.
pub const DATA: &[Case] = &[
    ("sequential_roundtrip", sequential_roundtrip),
    ("checkpoint_restart", checkpoint_restart),
    ("random_writes_overwrites_holes", random_writes_overwrites_holes),
    ("read_bounds", read_bounds),
    ("copy_same_store", copy_same_store),
    ("corrupt_piece_detected", corrupt_piece_detected),
    ("every_read_of_a_corrupt_block_fails", every_read_of_a_corrupt_block_fails),
    ("metadata_roundtrip", metadata_roundtrip),
];

/// How images come and go: exclusive create, compare-and-swap commits, listing, expiry,
/// orphans.
pub const COMMIT: &[Case] = &[
    ("create_existing_fails", create_existing_fails),
    ("racing_creators", racing_creators),
    ("list_prefix_and_states", list_prefix_and_states),
    ("delete_is_complete_and_idempotent", delete_is_complete_and_idempotent),
    ("concurrent_deletes_all_succeed", concurrent_deletes_all_succeed),
    ("corrupt_manifest", corrupt_manifest),
    ("second_writer_detected", second_writer_detected),
    ("date_must_match", date_must_match),
    ("orphans_found_and_removed", orphans_found_and_removed),
    ("manifest_replace_is_compare_and_swap", manifest_replace_is_compare_and_swap),
];

/// Pieces shared between images: synthetics, reference and extent copies, reclamation.
pub const SHARED: &[Case] = &[
    ("synthetic_full_outlives_its_source", shared::synthetic_full_outlives_its_source),
    ("include_refuses_what_it_cannot_share", shared::include_refuses_what_it_cannot_share),
    ("reference_copy_moves_no_data", shared::reference_copy_moves_no_data),
    ("extent_copy_across_lsus", shared::extent_copy_across_lsus),
    ("stale_references_are_repaired", shared::stale_references_are_repaired),
    ("includes_and_expiries_at_once", shared::includes_and_expiries_at_once),
];

/// Every case: what a backend passes to be a backend.
pub fn run_all(t: &dyn Target) {
    run(t, &[DATA, COMMIT, SHARED]);
}

/// The cases of `groups` (a variant of a backend that changes only part of its behaviour).
pub fn run(t: &dyn Target, groups: &[&[Case]]) {
    for (name, case) in groups.iter().flat_map(|g| g.iter()) {
        eprintln!("conformance: {name}");
        let start = std::time::Instant::now();
        case(t);
        eprintln!("conformance: {name}: {:.2} s", start.elapsed().as_secs_f64());
    }
}

pub(crate) fn def(name: &str) -> ImageDef {
    ImageDef {
        basename: name.into(),
        date: "1638486030".into(),
        policy: "pol".into(),
        copy_number: 1,
        ..Default::default()
    }
}

/// Deterministic bytes for image offset `off` (the same stream whatever the block split).
pub fn pattern(seed: u64, off: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = (off + i as u64).wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        *b = (x >> 56) as u8 ^ (x >> 29) as u8;
    }
}

pub(crate) fn write_seq(w: &mut ImageWriter, seed: u64, from: u64, to: u64, block: usize) {
    let mut buf = vec![0u8; block];
    let mut off = from;
    while off < to {
        let n = block.min((to - off) as usize);
        pattern(seed, off, &mut buf[..n]);
        w.write_at(&buf[..n], off).unwrap();
        off += n as u64;
    }
}

pub(crate) fn read_all(store: &Arc<dyn PieceStore>, lsu: &str, name: &str) -> Vec<u8> {
    let mut r = ImageReader::open(store.clone(), lsu, &def(name)).unwrap();
    let size = r.manifest().size;
    let mut out = vec![0u8; size as usize];
    let mut off = 0usize;
    while off < out.len() {
        let end = (off + 100_003).min(out.len());
        let n = r.read_at(&mut out[off..end], off as u64).unwrap();
        assert!(n > 0);
        off += n;
    }
    out
}

pub(crate) fn expect(seed: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    pattern(seed, 0, &mut v);
    v
}

fn sequential_roundtrip(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("seq_C1_F1")).unwrap();
    write_seq(&mut w, 1, 0, 3 * 262_144 + 1000, 262_144);
    let m = w.close(true).unwrap();
    assert_eq!(m.state, State::Complete);
    assert_eq!(m.pieces.len(), 1, "sequential writes make one piece");
    assert_eq!(read_all(&s, &lsu, "seq_C1_F1"), expect(1, 3 * 262_144 + 1000));
    let m = image::load(s.as_ref(), &lsu, &def("seq_C1_F1")).unwrap();
    assert_eq!((m.size, m.state, m.writer.is_none()), (3 * 262_144 + 1000, State::Complete, true));
    image::delete(s.as_ref(), &lsu, &def("seq_C1_F1")).unwrap();
}

fn create_existing_fails(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let w = ImageWriter::create(s.clone(), &lsu, def("dup_C1_HDR")).unwrap();
    let e = ImageWriter::create(s.clone(), &lsu, def("dup_C1_HDR")).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    w.close(true).unwrap();
    let e = ImageWriter::create(s.clone(), &lsu, def("dup_C1_HDR")).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    image::delete(s.as_ref(), &lsu, &def("dup_C1_HDR")).unwrap();
}

/// Eight writers create one name at once: at most one succeeds, the others get
/// `AlreadyExists`, and a complete image of that name is never replaced.
fn racing_creators(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let race = |name: &str, seed: u64| -> Vec<Result<(), ErrorKind>> {
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8u64)
                .map(|i| {
                    let (s, lsu) = (s.clone(), lsu.clone());
                    sc.spawn(move || {
                        let mut w = ImageWriter::create(s, &lsu, def(name)).map_err(|e| e.kind())?;
                        write_seq(&mut w, seed + i, 0, 100_000, 50_000);
                        w.close(true).map(drop).map_err(|e| e.kind())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    // A complete image: nobody replaces it.
    let mut w = ImageWriter::create(s.clone(), &lsu, def("race_C1_F1")).unwrap();
    write_seq(&mut w, 40, 0, 70_000, 70_000);
    w.close(true).unwrap();
    for r in race("race_C1_F1", 100) {
        assert_eq!(r, Err(ErrorKind::AlreadyExists));
    }
    assert_eq!(read_all(&s, &lsu, "race_C1_F1"), expect(40, 70_000), "the complete image is untouched");
    // A new name: at most one winner, whose image is whole; the others were told it exists.
    let results = race("race_C1_F2", 200);
    let won: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    eprintln!("conformance: racing_creators: {} winner(s) of 8", won.len());
    assert!(won.len() <= 1, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert_eq!(*r, Err(ErrorKind::AlreadyExists), "{results:?}");
    }
    if let [i] = won[..] {
        assert_eq!(read_all(&s, &lsu, "race_C1_F2"), expect(200 + i as u64, 100_000));
    }
    image::delete(s.as_ref(), &lsu, &def("race_C1_F1")).unwrap();
    image::delete(s.as_ref(), &lsu, &def("race_C1_F2")).unwrap();
}

fn checkpoint_restart(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("ckpt_C1_F1")).unwrap();
    write_seq(&mut w, 2, 0, 1 << 20, 65_536);
    w.close(false).unwrap();
    let m = image::load(s.as_ref(), &lsu, &def("ckpt_C1_F1")).unwrap();
    assert_eq!((m.state, m.size), (State::Pending, 1 << 20));
    // The restarted job continues at its checkpoint, a little before the end.
    let mut w = ImageWriter::append(s.clone(), &lsu, &def("ckpt_C1_F1")).unwrap();
    write_seq(&mut w, 2, (1 << 20) - 4096, 3 << 20, 65_536);
    w.flush().unwrap();
    write_seq(&mut w, 2, 3 << 20, 4 << 20, 65_536);
    w.close(true).unwrap();
    assert_eq!(read_all(&s, &lsu, "ckpt_C1_F1"), expect(2, 4 << 20));
    let e = ImageWriter::append(s.clone(), &lsu, &def("ckpt_C1_F1")).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::State, "a complete image is never writable again");
    image::delete(s.as_ref(), &lsu, &def("ckpt_C1_F1")).unwrap();
}

fn random_writes_overwrites_holes(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("rand_C1_F1")).unwrap();
    let mut model = vec![0u8; 1 << 20];
    let mut put = |w: &mut ImageWriter, seed: u64, off: u64, len: usize| {
        let mut b = vec![0u8; len];
        pattern(seed, off, &mut b);
        w.write_at(&b, off).unwrap();
        model[off as usize..off as usize + len].copy_from_slice(&b);
    };
    put(&mut w, 3, 0, 100_000);
    put(&mut w, 4, 500_000, 200_000); // leaves a hole
    put(&mut w, 5, 50_000, 100_000); // overwrites across the first extent's end
    put(&mut w, 6, 600_000, 448_576); // overlaps and extends to 1 MiB
    w.close(true).unwrap();
    assert_eq!(read_all(&s, &lsu, "rand_C1_F1"), model);
    image::delete(s.as_ref(), &lsu, &def("rand_C1_F1")).unwrap();
}

fn read_bounds(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("bounds_C1_F1")).unwrap();
    write_seq(&mut w, 7, 0, 1000, 1000);
    assert_eq!(w.write_at(&[], 0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(w.write_at(&[1], u64::MAX).unwrap_err().kind(), ErrorKind::InvalidArgument);
    w.close(true).unwrap();
    let mut r = ImageReader::open(s.clone(), &lsu, &def("bounds_C1_F1")).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(r.read_at(&mut buf, 900).unwrap(), 100);
    assert_eq!(r.read_at(&mut buf, 1000).unwrap(), 0);
    assert_eq!(r.read_at(&mut buf, 1001).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(r.read_at(&mut [], 0).unwrap_err().kind(), ErrorKind::InvalidArgument);
    image::delete(s.as_ref(), &lsu, &def("bounds_C1_F1")).unwrap();
}

fn list_prefix_and_states(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    for n in ["lst-a_1_C1_HDR", "lst-a_1_C1_F1"] {
        let mut w = ImageWriter::create(s.clone(), &lsu, def(n)).unwrap();
        write_seq(&mut w, 8, 0, 10, 10);
        w.close(true).unwrap();
    }
    let open = ImageWriter::create(s.clone(), &lsu, def("lst-a_1_C1_TIR")).unwrap();
    let other = ImageWriter::create(s.clone(), &lsu, def("lst-b_1_C1_HDR")).unwrap();
    let l = image::list(s.as_ref(), &lsu, "lst-a_").unwrap();
    let mut got: Vec<_> = l.iter().map(|m| (m.def.basename.as_str(), m.state, m.writer.is_some())).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![
            ("lst-a_1_C1_F1", State::Complete, false),
            ("lst-a_1_C1_HDR", State::Complete, false),
            ("lst-a_1_C1_TIR", State::Pending, true),
        ]
    );
    open.close(true).unwrap();
    other.close(false).unwrap();
    for n in ["lst-a_1_C1_HDR", "lst-a_1_C1_F1", "lst-a_1_C1_TIR", "lst-b_1_C1_HDR"] {
        image::delete(s.as_ref(), &lsu, &def(n)).unwrap();
    }
    assert!(image::list(s.as_ref(), &lsu, "lst-").unwrap().is_empty());
}

fn delete_is_complete_and_idempotent(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("del_C1_F1")).unwrap();
    write_seq(&mut w, 9, 0, 100_000, 10_000);
    write_seq(&mut w, 9, 0, 10_000, 10_000); // a second piece
    w.close(true).unwrap();
    image::delete(s.as_ref(), &lsu, &def("del_C1_F1")).unwrap();
    image::delete(s.as_ref(), &lsu, &def("del_C1_F1")).unwrap();
    assert!(s.list_images(&lsu, "del_").unwrap().is_empty(), "nothing of the image is left");
    assert_eq!(image::load(s.as_ref(), &lsu, &def("del_C1_F1")).unwrap_err().kind(), ErrorKind::NotFound);
    // A writer that died before its first commit left a piece but no manifest: delete cleans it.
    let mut w = ImageWriter::create(s.clone(), &lsu, def("del_C1_F2")).unwrap();
    write_seq(&mut w, 9, 0, 1000, 1000);
    drop(w);
    image::delete(s.as_ref(), &lsu, &def("del_C1_F2")).unwrap();
    assert!(s.list_images(&lsu, "del_").unwrap().is_empty());
}

/// Expiry may run several times at once (media servers, retries): every delete of one image
/// succeeds, and nothing of it is left.
fn concurrent_deletes_all_succeed(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    for round in 0..3 {
        let name = format!("exp{round}_C1_F1");
        let mut w = ImageWriter::create(s.clone(), &lsu, def(&name)).unwrap();
        write_seq(&mut w, 30 + round, 0, 300_000, 100_000);
        w.close(true).unwrap();
        let results: Vec<_> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let (s, lsu, name) = (s.clone(), lsu.clone(), name.clone());
                    sc.spawn(move || image::delete(s.as_ref(), &lsu, &def(&name)))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &results {
            assert!(r.is_ok(), "round {round}: a concurrent delete failed: {r:?}");
        }
        assert!(s.read_manifest(&lsu, &name).unwrap().is_none());
        assert!(s.list_image_keys(&lsu, &name).unwrap().is_empty(), "round {round}: something was left");
        assert!(!s.list_images(&lsu, "exp").unwrap().contains(&name));
    }
}

fn copy_same_store(t: &dyn Target) {
    let (a, b) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &a, def("cp_C1_F1")).unwrap();
    write_seq(&mut w, 10, 0, 2_000_000, 262_144);
    w.write_meta(b"meta!", 0).unwrap();
    let pending = ImageWriter::create(s.clone(), &a, def("cp_C1_F2")).unwrap();
    w.close(true).unwrap();
    for (to_lsu, to_name) in [(&b, "cp_C2_F1"), (&a, "cp_C2_F1")] {
        let m =
            image::copy((&s, &a, &def("cp_C1_F1")), (&s, to_lsu, &def(to_name)), CopyMode::Physical).unwrap();
        assert_eq!((m.state, m.size, m.meta.data.as_slice()), (State::Complete, 2_000_000, &b"meta!"[..]));
        assert_eq!(read_all(&s, to_lsu, to_name), expect(10, 2_000_000));
    }
    let e =
        image::copy((&s, &a, &def("cp_C1_F1")), (&s, &b, &def("cp_C2_F1")), CopyMode::Physical).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let e =
        image::copy((&s, &a, &def("cp_C1_F2")), (&s, &b, &def("cp_C2_F2")), CopyMode::Physical).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State, "a pending image is not copied");
    assert!(s.list_images(&b, "cp_C2_F2").unwrap().is_empty(), "a failed copy leaves nothing");
    let e = image::copy((&s, &a, &def("cp_nothing")), (&s, &b, &def("cp_C2_F3")), CopyMode::Physical)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    pending.close(false).unwrap();
    // The source is untouched by the copies and by deleting them.
    image::delete(s.as_ref(), &b, &def("cp_C2_F1")).unwrap();
    image::delete(s.as_ref(), &a, &def("cp_C2_F1")).unwrap();
    assert_eq!(read_all(&s, &a, "cp_C1_F1"), expect(10, 2_000_000));
    for n in ["cp_C1_F1", "cp_C1_F2"] {
        image::delete(s.as_ref(), &a, &def(n)).unwrap();
    }
}

fn corrupt_manifest(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("bad_C1_F1")).unwrap();
    write_seq(&mut w, 11, 0, 1000, 1000);
    w.close(true).unwrap();
    let good = ImageWriter::create(s.clone(), &lsu, def("bad_C1_F2")).unwrap();
    good.close(true).unwrap();
    t.put_raw_manifest(&lsu, "bad_C1_F1", b"{\"format\":\"vast-ost-image\"}\ncrc32c=00000000\n");
    assert_eq!(image::load(s.as_ref(), &lsu, &def("bad_C1_F1")).unwrap_err().kind(), ErrorKind::Corrupt);
    assert_eq!(
        ImageReader::open(s.clone(), &lsu, &def("bad_C1_F1")).err().unwrap().kind(),
        ErrorKind::Corrupt
    );
    let names: Vec<_> =
        image::list(s.as_ref(), &lsu, "bad_").unwrap().into_iter().map(|m| m.def.basename).collect();
    assert_eq!(names, vec!["bad_C1_F2"], "a corrupt image does not hide the others");
    image::delete(s.as_ref(), &lsu, &def("bad_C1_F1")).unwrap();
    image::delete(s.as_ref(), &lsu, &def("bad_C1_F2")).unwrap();
    assert!(s.list_images(&lsu, "bad_").unwrap().is_empty());
}

fn corrupt_piece_detected(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("rot_C1_F1")).unwrap();
    write_seq(&mut w, 12, 0, 300_000, 65_536);
    let m = w.close(true).unwrap();
    t.flip_bit(&lsu, &m.pieces[0].key, 150_000);
    let mut r = ImageReader::open(s.clone(), &lsu, &def("rot_C1_F1")).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut off = 0;
    let err = loop {
        match r.read_at(&mut buf, off) {
            Ok(0) => panic!("a full read of a corrupted piece passed"),
            Ok(n) => off += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    image::delete(s.as_ref(), &lsu, &def("rot_C1_F1")).unwrap();
}

/// Read `len` bytes at `off` with a fresh reader: the bytes, or the error's kind.
fn read_fresh(
    s: &Arc<dyn PieceStore>,
    lsu: &str,
    name: &str,
    off: u64,
    len: usize,
) -> Result<Vec<u8>, ErrorKind> {
    let mut r = ImageReader::open(s.clone(), lsu, &def(name)).unwrap();
    let mut buf = vec![0u8; len];
    let n = r.read_at(&mut buf, off).map_err(|e| e.kind())?;
    buf.truncate(n);
    Ok(buf)
}

/// A bit flipped anywhere in a stored piece (data or block table) fails every read that
/// touches its block, sequential or random, and never hands out wrong bytes; reads of other
/// blocks go on.
fn every_read_of_a_corrupt_block_fails(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let bs = BLOCK_SIZE as u64;
    let size = 5 * bs + 1000;
    let name = "blk_C1_F1";
    let mut w = ImageWriter::create(s.clone(), &lsu, def(name)).unwrap();
    write_seq(&mut w, 21, 0, size, 100_000);
    let m = w.close(true).unwrap();
    assert_eq!(m.pieces.len(), 1);
    let key = m.pieces[0].key.clone();
    let expect = |off: u64, len: usize| {
        let mut b = vec![0u8; len];
        pattern(21, off, &mut b);
        b
    };
    // Data bytes: the middle of block 2, the first byte of block 0, the last byte of the short
    // last block.
    for at in [2 * bs + 1234, 0, size - 1] {
        let b = at / bs;
        t.flip_bit(&lsu, &key, at);
        // Sequentially: every read before the block is right, the one that reaches it fails.
        let mut r = ImageReader::open(s.clone(), &lsu, &def(name)).unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut off = 0;
        let err = loop {
            match r.read_at(&mut buf, off) {
                Ok(0) => panic!("a sequential read of a piece with a flipped bit at {at} passed"),
                Ok(n) => {
                    assert!(off + (n as u64) <= b * bs, "read at {off} touched block {b} and passed");
                    assert_eq!(buf[..n], expect(off, n)[..], "bytes at {off}");
                    off += n as u64;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert_eq!(off, b * bs / 65_536 * 65_536, "the error came at the read reaching block {b}");
        // At random: inside the block, across its start, the whole block; all fail.
        for (off, len) in
            [(at, 1), (b * bs + 10, 500), (b * bs, bs as usize), ((b * bs).saturating_sub(100), 300)]
        {
            if off < b * bs + bs && off + len as u64 > b * bs && off + (len as u64) <= size {
                assert_eq!(
                    read_fresh(&s, &lsu, name, off, len),
                    Err(ErrorKind::Corrupt),
                    "read {len} at {off}"
                );
            }
        }
        // Other blocks read right.
        for other in (0..=5).filter(|&o| o != b) {
            let len = (bs.min(size - other * bs)) as usize;
            assert_eq!(
                read_fresh(&s, &lsu, name, other * bs, len).unwrap(),
                expect(other * bs, len),
                "block {other}"
            );
        }
        t.flip_bit(&lsu, &key, at);
        assert_eq!(read_fresh(&s, &lsu, name, b * bs, 10).unwrap(), expect(b * bs, 10), "restored");
    }
    // The block table, stored after the data: every read of the piece fails.
    t.flip_bit(&lsu, &key, size + 6);
    for (off, len) in [(0, 10), (3 * bs, 100), (size - 5, 5)] {
        assert_eq!(read_fresh(&s, &lsu, name, off, len), Err(ErrorKind::Corrupt), "read {len} at {off}");
    }
    t.flip_bit(&lsu, &key, size + 6);
    assert_eq!(read_fresh(&s, &lsu, name, 0, size as usize).unwrap(), expect(0, size as usize));
    image::delete(s.as_ref(), &lsu, &def(name)).unwrap();
}

fn second_writer_detected(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let w = ImageWriter::create(s.clone(), &lsu, def("two_C1_F1")).unwrap();
    // Another media server restarts the job and takes the image over.
    let mut w2 = ImageWriter::append(s.clone(), &lsu, &def("two_C1_F1")).unwrap();
    write_seq(&mut w2, 13, 0, 5000, 5000);
    w2.close(false).unwrap();
    let e = w.close(true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State, "the stale writer must not overwrite the new one's commit");
    let m = image::load(s.as_ref(), &lsu, &def("two_C1_F1")).unwrap();
    assert_eq!((m.state, m.size), (State::Pending, 5000));
    image::delete(s.as_ref(), &lsu, &def("two_C1_F1")).unwrap();
}

fn metadata_roundtrip(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("meta_C1_IM")).unwrap();
    w.write_meta(b"hello", 0).unwrap();
    w.write_meta(b" world", 5).unwrap();
    assert_eq!(w.write_meta(b"x", ost_abi_max()).unwrap_err().kind(), ErrorKind::InvalidArgument);
    w.close(true).unwrap();
    let m = image::load(s.as_ref(), &lsu, &def("meta_C1_IM")).unwrap();
    assert_eq!((m.meta.data.as_slice(), m.size), (&b"hello world"[..], 0));
    image::delete(s.as_ref(), &lsu, &def("meta_C1_IM")).unwrap();
}

fn ost_abi_max() -> u64 {
    1 << 20
}

fn date_must_match(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    ImageWriter::create(s.clone(), &lsu, def("date_C1_F1")).unwrap().close(true).unwrap();
    let mut other = def("date_C1_F1");
    other.date = "1".into();
    assert_eq!(image::load(s.as_ref(), &lsu, &other).unwrap_err().kind(), ErrorKind::NotFound);
    image::delete(s.as_ref(), &lsu, &other).unwrap();
    other.date.clear();
    image::load(s.as_ref(), &lsu, &other).expect("deleting another date left this image alone");
    image::delete(s.as_ref(), &lsu, &def("date_C1_F1")).unwrap();
}

fn orphans_found_and_removed(t: &dyn Target) {
    use std::time::Duration;
    let (lsu, _) = t.lsus();
    let s = t.store();
    // A writer that committed part of its image, then died: its pid is gone, and it left a
    // piece no manifest names.
    let mut w = ImageWriter::create(s.clone(), &lsu, def("orph_C1_F1")).unwrap();
    write_seq(&mut w, 20, 0, 100_000, 50_000);
    w.flush().unwrap();
    drop(w);
    let mut stray = s.create_piece(&lsu, "orph_C1_F1/dead-00009.piece").unwrap();
    stray.append(&[9u8; 1000]).unwrap();
    stray.finish().unwrap();
    let mut m = image::load(s.as_ref(), &lsu, &def("orph_C1_F1")).unwrap();
    m.writer = Some(Writer {
        host: vast_ost_engine::util::hostname(),
        pid: i32::MAX as u32,
        session: "dead".into(),
    });
    t.put_raw_manifest(&lsu, "orph_C1_F1", &m.encode());
    // A writer that died during a delete: pieces with no manifest.
    let mut w = ImageWriter::create(s.clone(), &lsu, def("orph_C1_F2")).unwrap();
    write_seq(&mut w, 21, 0, 10_000, 10_000);
    w.close(true).unwrap();
    s.remove_keys(&lsu, "orph_C1_F2", &["orph_C1_F2/manifest".to_string()]).unwrap();
    // A live writer with a piece in flight: not an orphan.
    let mut live = ImageWriter::create(s.clone(), &lsu, def("orph_C1_F3")).unwrap();
    write_seq(&mut live, 22, 0, 10_000, 10_000);

    let o = image::find_orphans(s.as_ref(), &lsu, Duration::ZERO, Default::default()).unwrap();
    let names = |v: &[(String, Vec<String>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&o.without_manifest), ["orph_C1_F2"]);
    assert_eq!(names(&o.unreferenced), ["orph_C1_F1"]);
    assert!(o.unreferenced[0].1.contains(&"orph_C1_F1/dead-00009.piece".to_string()), "{:?}", o.unreferenced);
    assert_eq!(o.stale_pending.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["orph_C1_F1"]);
    assert!(
        image::find_orphans(s.as_ref(), &lsu, Duration::from_secs(3600), Default::default())
            .unwrap()
            .without_manifest
            .len()
            <= 1
    );

    image::remove_orphans(s.as_ref(), &lsu, &o, false).unwrap();
    assert!(s.list_image_keys(&lsu, "orph_C1_F2").unwrap().is_empty(), "the manifest-less image is gone");
    let kept = s.list_image_keys(&lsu, "orph_C1_F1").unwrap();
    assert!(!kept.iter().any(|(k, _)| k.contains("dead-")), "the stray piece is gone: {kept:?}");
    // The pending image NetBackup may resume is intact.
    let mut r = ImageReader::open(s.clone(), &lsu, &def("orph_C1_F1")).unwrap();
    let mut back = vec![0u8; 100_000];
    assert_eq!(r.read_at(&mut back, 0).unwrap(), 100_000);
    assert_eq!(back, expect(20, 100_000));
    assert!(image::find_orphans(s.as_ref(), &lsu, Duration::ZERO, Default::default())
        .unwrap()
        .without_manifest
        .is_empty());
    // On request, stale pending images go too.
    let o = image::find_orphans(s.as_ref(), &lsu, Duration::ZERO, Default::default()).unwrap();
    image::remove_orphans(s.as_ref(), &lsu, &o, true).unwrap();
    assert_eq!(image::load(s.as_ref(), &lsu, &def("orph_C1_F1")).unwrap_err().kind(), ErrorKind::NotFound);
    live.close(true).unwrap();
    image::delete(s.as_ref(), &lsu, &def("orph_C1_F3")).unwrap();
    assert!(s.list_images(&lsu, "orph_").unwrap().is_empty());
}

fn manifest_replace_is_compare_and_swap(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    ImageWriter::create(s.clone(), &lsu, def("cas_C1_F1")).unwrap().close(false).unwrap();
    let raw = s.read_manifest(&lsu, "cas_C1_F1").unwrap().unwrap();
    let mut m = image::load(s.as_ref(), &lsu, &def("cas_C1_F1")).unwrap();
    m.generation += 1;
    let next = m.encode();
    let e = s.replace_manifest(&lsu, "cas_C1_F1", &next, b"something else").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State, "a replace on a manifest that changed is refused");
    s.replace_manifest(&lsu, "cas_C1_F1", &next, &raw).unwrap();
    m.generation += 1;
    let stale = s.replace_manifest(&lsu, "cas_C1_F1", &m.encode(), &raw).unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::State, "the second writer working from the old manifest loses");
    assert_eq!(s.read_manifest(&lsu, "cas_C1_F1").unwrap().unwrap(), next);
    // A delete in between: the commit does not bring the image back.
    image::delete(s.as_ref(), &lsu, &def("cas_C1_F1")).unwrap();
    assert!(s.replace_manifest(&lsu, "cas_C1_F1", &m.encode(), &next).is_err());
    assert!(s.read_manifest(&lsu, "cas_C1_F1").unwrap().is_none());
    image::delete(s.as_ref(), &lsu, &def("cas_C1_F1")).unwrap();
}
