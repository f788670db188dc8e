//! RFC 6238 Appendix B through the plugin's exported C functions, with a host that computes
//! HMACs in software and a clock the test sets.

#![allow(unsafe_code, reason = "calls the plugin's exported entry")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_oath::software_host::SoftwareHost;
use countersign_plugin_abi::abi::Status;
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse, SecretRef};

/// (time, SHA-1, SHA-256, SHA-512) from Appendix B, 8 digits, step 30.
const VECTORS: [(i64, &str, &str, &str); 6] = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
];

fn host(now: i64) -> SoftwareHost {
    let mut h = SoftwareHost { now_ms: now * 1000, ..SoftwareHost::default() };
    h.seeds.insert("sha1".into(), b"12345678901234567890".to_vec());
    h.seeds.insert("sha256".into(), b"12345678901234567890123456789012".to_vec());
    h.seeds.insert("sha512".into(), b"1234567890123456789012345678901234567890123456789012345678901234".to_vec());
    h
}

fn check(h: &SoftwareHost, hash: &str, otp: &str, first: u64, window: u32) -> Option<PluginResponse> {
    // SAFETY: the entry returns the plugin's static descriptor.
    let d = unsafe { &*countersign_token_totp::countersign_plugin_entry() };
    let req = PluginRequest::CheckOtp {
        secret: SecretRef(hash.into()),
        otp: otp.into(),
        first,
        window,
        params: serde_json::json!({ "digits": 8, "hash": hash, "step": 30 }),
    };
    let (status, resp, text) = h.ask(d, req);
    assert_eq!(status, Status::Ok, "{text}");
    resp
}

#[test]
fn appendix_b_vectors() {
    for (t, sha1, sha256, sha512) in VECTORS {
        let h = host(t);
        let step = (t / 30) as u64;
        for (hash, code) in [("sha1", sha1), ("sha256", sha256), ("sha512", sha512)] {
            assert_eq!(check(&h, hash, code, 0, 0), Some(PluginResponse::Matched { counter: step }), "{t} {hash}");
        }
    }
}

#[test]
fn window_and_last_accepted_step() {
    // The code for t=59 (step 1), checked one step later with a window of 1: accepted.
    let h = host(89);
    assert_eq!(check(&h, "sha1", "94287082", 0, 1), Some(PluginResponse::Matched { counter: 1 }));
    // Window 0: only the current step.
    assert_eq!(check(&h, "sha1", "94287082", 0, 0), Some(PluginResponse::NoMatch));
    // Step 1 already accepted (the host asks from step 2 on): rejected.
    assert_eq!(check(&h, "sha1", "94287082", 2, 1), Some(PluginResponse::NoMatch));
}
