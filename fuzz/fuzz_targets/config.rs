//! The config parser: any text gives a config or an error naming the file, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vast_ost_engine::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::parse(text, std::path::Path::new("/etc/fuzz.toml")) {
        assert!(e.message().starts_with("/etc/fuzz.toml"), "{e}");
    }
});
