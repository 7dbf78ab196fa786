//! The manifest decoder: any bytes from storage give a checked manifest or `Corrupt`, never a
//! panic; what decodes re-encodes to something that decodes the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vast_ost_engine::manifest::Manifest;
use vast_ost_engine::ErrorKind;

fuzz_target!(|data: &[u8]| {
    check(data);
    // The same bytes as a manifest body with a valid checksum line, so the fuzzer gets past
    // the CRC to the JSON and structure checks.
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(format!("\ncrc32c={:08x}\n", crc32c::crc32c(data)).as_bytes());
    check(&sealed);
});

fn check(data: &[u8]) {
    match Manifest::decode(data) {
        Ok(m) => {
            for e in &m.extents {
                let p = &m.pieces[e.piece as usize];
                assert!(e.piece_off + e.len <= p.len && e.off + e.len <= m.size);
            }
            assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt),
    }
}
