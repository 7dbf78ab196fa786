// Export only the stspi_* entry points: NetBackup's processes carry their own libraries
// (OpenSSL among them), and nothing of ours may interpose on theirs.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=exports.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/exports.map");
    // `libstspiVastDataMT.so -version`: an ELF entry point (src/exe.rs, hidden, so not exported).
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
    {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-e,vast_ost_so_entry");
    }
}
