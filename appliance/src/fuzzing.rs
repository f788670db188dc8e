//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that keep their
//! findings fixed: thin wrappers that feed bytes to the same parsing the daemon runs on request
//! bodies, privacyIDEA parameters, card answers and OTP input. Hidden from the docs; not an
//! API for anything else.
//!
//! This module owns no state. It must never reach the store, the HSM, a socket, a plugin or a
//! card, nor change what the wrapped code does: it only calls it.

/// A native API body: the first byte picks the route's body type, the rest is the JSON body.
pub fn native_body(data: &[u8]) {
    crate::http::fuzzing::native_body(data);
}

/// A privacyIDEA request: content type byte (`j`, `f`, `n`, other), query, newline, body.
pub fn pi_params(data: &[u8]) {
    crate::http::fuzzing::pi_params(data);
}

/// Card answers: one answer (even first byte) or a script of answers to one command (odd).
pub fn apdu(data: &[u8]) {
    crate::devices::fuzzing::card_answers(data);
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

    use std::path::Path;

    /// The seed corpus and the regression inputs of a fuzz target, as (file name, bytes).
    fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut out = Vec::new();
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else { continue };
            for e in entries {
                let path = e.unwrap().path();
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
        out
    }

    #[test]
    fn fuzz_seeds_and_regressions_pass_through_every_entry_point() {
        type Entry = fn(&[u8]);
        let runs: [(&str, Entry); 3] =
            [("native_body", super::native_body), ("pi_params", super::pi_params), ("apdu", super::apdu)];
        for (target, run) in runs {
            let all = inputs(target);
            assert!(!all.is_empty(), "no seed corpus for {target}");
            for (name, bytes) in all {
                eprintln!("{name}");
                run(&bytes);
            }
        }
        for (_, bytes) in inputs("otp_input") {
            let pass = bytes.get(10..).unwrap_or_default();
            for digits in 6..=9 {
                if let Some((pin, otp)) = super::otp_split(pass, &serde_json::json!({ "digits": digits })) {
                    if pass.is_ascii() {
                        assert_eq!([pin.as_slice(), otp.as_bytes()].concat(), pass);
                        assert_eq!(otp.len(), digits);
                    }
                }
            }
        }
    }
}
