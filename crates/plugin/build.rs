// Export only the stspi_* entry points: NetBackup's processes carry their own libraries
// (OpenSSL among them), and nothing of ours may interpose on theirs.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=exports.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/exports.map");
}
