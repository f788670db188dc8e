//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that keep their
//! findings fixed (`tests/tests/integration/fuzz_corpus.rs`): thin wrappers that feed bytes to
//! the same parsing the services run on OTP input and plugin messages. Request bodies and
//! privacyIDEA parameters are `countersign_http::fuzzing`'s, card answers
//! `countersign_card::fuzzing`'s. Hidden from the docs; not an API for anything else.
//!
//! This module owns no state. It must never reach the store, the HSM, a socket, a plugin or a
//! card, nor change what the wrapped code does: it only calls it.

/// A check's `pass` split as `/validate/check` splits it for a token with these parameters:
/// (PIN, the code the token plugin gets), or `None` when `pass` is shorter than a code.
pub fn otp_split(pass: &[u8], token_params: &serde_json::Value) -> Option<(Vec<u8>, String)> {
    let (pin, otp) = countersign_core::rules::split_pass(pass, countersign_core::rules::otp_digits(token_params))?;
    Some((pin.to_vec(), String::from_utf8_lossy(otp).into_owned()))
}

/// What the daemon reads from a plugin worker's frames: a host capability request (and the
/// capability it needs) or a plugin's answer, each in its protocol envelope.
pub fn plugin_messages(text: &str) {
    use countersign_plugin_abi::protocol::{HostRequest, PluginResponse};
    if let Ok(req) = crate::plugins::decode::<HostRequest>(text) {
        let _ = crate::plugins::capability(&req);
    }
    drop(crate::plugins::decode::<PluginResponse>(text));
}
