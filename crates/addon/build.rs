//! The Node-API symbols come from the host process at load time. Linux allows undefined
//! symbols in a shared object by default; macOS must be told to look them up dynamically.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-undefined");
        println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
    }
}
