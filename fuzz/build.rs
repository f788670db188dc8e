//! Both token plugins export the plugin entry symbol `countersign_plugin_entry` (one per
//! cdylib, as the worker expects). `otp_input` links both as rlibs and never calls that symbol
//! (it wraps their handlers in descriptors of its own), so the duplicate is allowed there.
fn main() {
    println!("cargo:rustc-link-arg-bin=otp_input=-Wl,--allow-multiple-definition");
}
