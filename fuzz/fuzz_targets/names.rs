//! Names from NetBackup: whatever passes validation is one safe path component.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vast_ost_engine::names;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if names::validate("image", s).is_ok() {
        assert!(!s.is_empty() && s.len() <= names::MAX_NAME);
        assert!(!s.starts_with('.') && !s.contains('/') && !s.contains('\\') && !s.contains('\0'));
        let p = std::path::Path::new("/lsu").join(s);
        assert_eq!(p.parent(), Some(std::path::Path::new("/lsu")), "{s:?} left the LSU");
    }
    if let Ok(host) = names::parse_server_name(s) {
        assert!(s.starts_with(names::PREFIX) && !host.is_empty() && !host.contains('/'));
    }
});
