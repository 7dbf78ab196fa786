//! Conformance of pieces shared between images (manifest version 3): optimized synthetics,
//! reference copies, extent copies, and their reclamation, on every backend.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vast_ost_engine::image::{self, shared, CopyMode, ImageReader, ImageWriter};
use vast_ost_engine::store::PieceStore;
use vast_ost_engine::ErrorKind;

use super::{def, expect, pattern, read_all, write_seq, Target};

const KIB: u64 = 1 << 10;

/// Every key stored in `lsu` under the images whose names start with `prefix`.
fn keys_left(s: &Arc<dyn PieceStore>, lsu: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for image in s.list_images(lsu, prefix).unwrap() {
        out.extend(s.list_image_keys(lsu, &image).unwrap().into_iter().map(|(k, _)| k));
    }
    out
}

fn write_full(s: &Arc<dyn PieceStore>, lsu: &str, name: &str, seed: u64, size: u64) {
    let mut w = ImageWriter::create(s.clone(), lsu, def(name)).unwrap();
    write_seq(&mut w, seed, 0, size, 256 * KIB as usize);
    w.close(true).unwrap();
}

/// An Accelerator-style synthetic full: 95 % included from the last full (at other offsets),
/// 5 % new. It reads right, stays readable after the full expires, writes ≤ 6 % of its bytes,
/// and once both are expired nothing of either is left.
pub fn synthetic_full_outlives_its_source(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let size = 4096 * KIB;
    write_full(&s, &lsu, "acc_C1_F1", 1, size);
    let seg = 64 * KIB;
    let mut want = vec![0u8; size as usize];
    let mut w = ImageWriter::create(s.clone(), &lsu, def("acc_C1_F2")).unwrap();
    for k in 0..size / seg {
        let dst = k * seg;
        let out = &mut want[dst as usize..(dst + seg) as usize];
        if k % 20 == 7 {
            pattern(2, dst, out);
            w.write_at(out, dst).unwrap();
        } else {
            let src = (dst + 100_000) % (size - seg);
            pattern(1, src, out);
            w.include(&def("acc_C1_F1"), src, seg, dst).unwrap();
        }
    }
    let m = w.close(true).unwrap();
    let own: u64 = m.pieces.iter().filter(|p| p.owned).map(|p| p.len).sum();
    assert!(own * 100 <= size * 6, "the synthetic wrote {own} of {size} bytes");
    assert!(m.pieces.iter().any(|p| !p.owned), "it references the full's pieces");
    assert_eq!(read_all(&s, &lsu, "acc_C1_F2"), want);
    image::delete(s.as_ref(), &lsu, &def("acc_C1_F1")).unwrap();
    assert!(image::load(s.as_ref(), &lsu, &def("acc_C1_F1")).is_err(), "the full is gone");
    assert_eq!(read_all(&s, &lsu, "acc_C1_F2"), want, "the synthetic outlives the full it came from");
    image::delete(s.as_ref(), &lsu, &def("acc_C1_F2")).unwrap();
    assert_eq!(keys_left(&s, &lsu, "acc_"), Vec::<String>::new(), "no piece or record is left");
}

/// Only complete images of the same LSU can be included, inside their size.
pub fn include_refuses_what_it_cannot_share(t: &dyn Target) {
    let (lsu, lsu2) = t.lsus();
    let s = t.store();
    write_full(&s, &lsu, "inc_C1_F1", 3, 512 * KIB);
    write_full(&s, &lsu2, "inc_C1_F9", 3, 512 * KIB);
    let pending = ImageWriter::create(s.clone(), &lsu, def("inc_C1_F2")).unwrap();
    let mut w = ImageWriter::create(s.clone(), &lsu, def("inc_C1_F3")).unwrap();
    let kind = |r: vast_ost_engine::Result<()>| r.unwrap_err().kind();
    assert_eq!(kind(w.include(&def("inc_C1_F2"), 0, 10, 0)), ErrorKind::State, "a pending image");
    assert_eq!(kind(w.include(&def("inc_C1_F8"), 0, 10, 0)), ErrorKind::NotFound, "a missing image");
    assert_eq!(kind(w.include(&def("inc_C1_F9"), 0, 10, 0)), ErrorKind::NotFound, "an image of another LSU");
    assert_eq!(
        kind(w.include(&def("inc_C1_F1"), 500 * KIB, 20 * KIB, 0)),
        ErrorKind::InvalidArgument,
        "past its end"
    );
    assert_eq!(kind(w.include(&def("inc_C1_F1"), 0, 0, 0)), ErrorKind::InvalidArgument, "empty");
    // After the refusals the writer is fine: a good include, and holes stay holes.
    w.write_at(&[7u8; 100], 0).unwrap();
    w.include(&def("inc_C1_F1"), 10 * KIB, 20 * KIB, 50).unwrap();
    w.close(true).unwrap();
    let got = read_all(&s, &lsu, "inc_C1_F3");
    let mut src = vec![0u8; 20 * KIB as usize];
    pattern(3, 10 * KIB, &mut src);
    assert_eq!(&got[..50], &[7u8; 50][..]);
    assert_eq!(&got[50..50 + src.len()], &src[..], "the include replaces what it covers");
    pending.close(true).unwrap();
    for (l, n) in [(&lsu, "inc_C1_F1"), (&lsu, "inc_C1_F2"), (&lsu, "inc_C1_F3"), (&lsu2, "inc_C1_F9")] {
        image::delete(s.as_ref(), l, &def(n)).unwrap();
    }
    assert!(keys_left(&s, &lsu, "inc_").is_empty());
}

/// `copy_image` inside one LSU references the source: no data moves, either copy expires on
/// its own, and a physical copy still gets pieces of its own.
pub fn reference_copy_moves_no_data(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    write_full(&s, &lsu, "ref_C1_F1", 4, 1024 * KIB);
    let both = (&s, lsu.as_str());
    let m = image::copy(
        (both.0, both.1, &def("ref_C1_F1")),
        (both.0, both.1, &def("ref_C2_F1")),
        CopyMode::Reference,
    )
    .unwrap();
    assert!(m.pieces.iter().all(|p| !p.owned), "a reference copy owns no piece");
    let p = image::copy(
        (both.0, both.1, &def("ref_C1_F1")),
        (both.0, both.1, &def("ref_C3_F1")),
        CopyMode::Physical,
    )
    .unwrap();
    assert!(p.pieces.iter().all(|p| p.owned), "a physical copy owns its pieces");
    // A copy of the reference copy references the same pieces (no chains).
    let c = image::copy(
        (both.0, both.1, &def("ref_C2_F1")),
        (both.0, both.1, &def("ref_C4_F1")),
        CopyMode::Reference,
    )
    .unwrap();
    assert_eq!(
        c.pieces.iter().map(|p| &p.key).collect::<Vec<_>>(),
        m.pieces.iter().map(|p| &p.key).collect::<Vec<_>>()
    );
    image::delete(s.as_ref(), &lsu, &def("ref_C1_F1")).unwrap();
    for n in ["ref_C2_F1", "ref_C3_F1", "ref_C4_F1"] {
        assert_eq!(read_all(&s, &lsu, n), expect(4, 1024 * KIB), "{n} after the source expired");
    }
    let r = shared::read(s.as_ref(), &lsu, &m.pieces[0].key).unwrap().unwrap();
    assert_eq!(
        (r.owner_alive, r.referrers.clone()),
        (false, vec!["ref_C2_F1".to_string(), "ref_C4_F1".to_string()])
    );
    for n in ["ref_C2_F1", "ref_C3_F1", "ref_C4_F1"] {
        image::delete(s.as_ref(), &lsu, &def(n)).unwrap();
    }
    assert!(keys_left(&s, &lsu, "ref_").is_empty(), "{:?}", keys_left(&s, &lsu, "ref_"));
}

/// Optimized duplication extent by extent, in NetBackup's 256 KiB units: into another LSU the
/// pieces are copied inside the storage (once each); inside one LSU the copy references them.
pub fn extent_copy_across_lsus(t: &dyn Target) {
    let (lsu, lsu2) = t.lsus();
    let s = t.store();
    let size = 1536 * KIB + 1000;
    write_full(&s, &lsu, "ext_C1_F1", 5, size);
    for (to_lsu, to) in [(&lsu2, "ext_C2_F1"), (&lsu, "ext_C3_F1")] {
        let mut r = ImageReader::open(s.clone(), &lsu, &def("ext_C1_F1")).unwrap();
        let mut w = ImageWriter::create(s.clone(), to_lsu, def(to)).unwrap();
        let mut off = 0;
        while off < size {
            let n = (256 * KIB).min(size - off);
            w.copy_extent(&mut r, off, n, off, CopyMode::Reference).unwrap();
            off += n;
        }
        let m = w.close(true).unwrap();
        assert_eq!(m.pieces.len(), 1, "{to}: the source piece once");
        assert_eq!(m.pieces[0].owned, to_lsu != &lsu, "{to}: a copy across LSUs, a reference within one");
    }
    image::delete(s.as_ref(), &lsu, &def("ext_C1_F1")).unwrap();
    assert_eq!(read_all(&s, &lsu2, "ext_C2_F1"), expect(5, size));
    assert_eq!(read_all(&s, &lsu, "ext_C3_F1"), expect(5, size));
    image::delete(s.as_ref(), &lsu2, &def("ext_C2_F1")).unwrap();
    image::delete(s.as_ref(), &lsu, &def("ext_C3_F1")).unwrap();
    assert!(keys_left(&s, &lsu, "ext_").is_empty() && keys_left(&s, &lsu2, "ext_").is_empty());
}

/// A referrer that registered and died before committing (here: an image that never came to
/// be) keeps a piece alive only until cleanup, which then removes the piece.
pub fn stale_references_are_repaired(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    write_full(&s, &lsu, "stale_C1_F1", 6, 300 * KIB);
    let m = image::load(s.as_ref(), &lsu, &def("stale_C1_F1")).unwrap();
    shared::add_ref(s.as_ref(), &lsu, &m.pieces[0], "ghost_C1_F1").unwrap();
    image::delete(s.as_ref(), &lsu, &def("stale_C1_F1")).unwrap();
    assert!(!keys_left(&s, &lsu, "stale_").is_empty(), "the registered piece is kept");
    let o = image::find_orphans(s.as_ref(), &lsu, Duration::ZERO, Default::default()).unwrap();
    assert_eq!(o.stale_refs.len(), 1, "{o:?}");
    assert_eq!(o.stale_refs[0].referrers, vec!["ghost_C1_F1".to_string()]);
    assert!(o.without_manifest.iter().all(|(i, _)| i != "stale_C1_F1"), "a held piece is not an orphan");
    image::remove_orphans(s.as_ref(), &lsu, &o, false).unwrap();
    assert!(keys_left(&s, &lsu, "stale_").is_empty(), "{:?}", keys_left(&s, &lsu, "stale_"));
}

/// Two writers at once for a bounded time: one writes fulls and expires old ones, the other
/// builds synthetics from the newest full and expires old synthetics. Every complete image
/// reads right at the end; after the last expiry nothing is left.
pub fn includes_and_expiries_at_once(t: &dyn Target) {
    let (lsu, _) = t.lsus();
    let s = t.store();
    let size = 256 * KIB;
    let stop = AtomicBool::new(false);
    let latest = Mutex::new(None::<u64>);
    // What each complete synthetic must read: (name, bytes).
    let synthetics = Mutex::new(Vec::<(String, Vec<u8>)>::new());
    let deadline = Instant::now() + Duration::from_secs(3);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut i = 0u64;
            while Instant::now() < deadline {
                write_full(&s, &lsu, &format!("cc_C1_F{i:04}"), 100 + i, size);
                *latest.lock().unwrap() = Some(i);
                if i >= 2 {
                    image::delete(s.as_ref(), &lsu, &def(&format!("cc_C1_F{:04}", i - 2))).unwrap();
                }
                i += 1;
            }
            stop.store(true, Ordering::Relaxed);
        });
        sc.spawn(|| {
            let mut j = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Some(base) = *latest.lock().unwrap() else { continue };
                let name = format!("cs_C1_F{j:04}");
                let mut w = ImageWriter::create(s.clone(), &lsu, def(&name)).unwrap();
                let mut want = vec![0u8; size as usize];
                let half = size / 2;
                w.write_at(&[j as u8; 1000], 0).unwrap();
                want[..1000].fill(j as u8);
                match w.include(&def(&format!("cc_C1_F{base:04}")), 1000, half, 1000) {
                    Ok(()) => {
                        pattern(100 + base, 1000, &mut want[1000..1000 + half as usize]);
                        want.truncate(1000 + half as usize);
                        w.close(true).unwrap();
                        assert_eq!(read_all(&s, &lsu, &name), want, "{name} right after it was written");
                        synthetics.lock().unwrap().push((name, want));
                    }
                    // The full expired under our feet: the include says so, nothing breaks.
                    Err(e) => {
                        assert!(matches!(e.kind(), ErrorKind::NotFound), "{e}");
                        drop(w);
                        image::delete(s.as_ref(), &lsu, &def(&name)).unwrap();
                    }
                }
                if j >= 2 {
                    image::delete(s.as_ref(), &lsu, &def(&format!("cs_C1_F{:04}", j - 2))).unwrap();
                    synthetics.lock().unwrap().retain(|(n, _)| *n != format!("cs_C1_F{:04}", j - 2));
                }
                j += 1;
            }
        });
    });
    let left = synthetics.into_inner().unwrap();
    eprintln!("conformance: includes_and_expiries_at_once: {} synthetic(s) left to check", left.len());
    for (name, want) in &left {
        assert_eq!(read_all(&s, &lsu, name), *want, "{name} at the end");
    }
    for image in s.list_images(&lsu, "c").unwrap() {
        if image.starts_with("cc_") || image.starts_with("cs_") {
            image::delete(s.as_ref(), &lsu, &def(&image)).unwrap();
        }
    }
    for p in ["cc_", "cs_"] {
        assert!(keys_left(&s, &lsu, p).is_empty(), "{p}: {:?}", keys_left(&s, &lsu, p));
    }
}
