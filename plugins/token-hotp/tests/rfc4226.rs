//! RFC 4226 Appendix D through the plugin's exported C functions, with a host that computes
//! HMAC-SHA-1 in software.

#![allow(unsafe_code, reason = "calls the plugin's exported entry")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_oath::software_host::SoftwareHost;
use countersign_plugin_abi::abi::Status;
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse, SecretRef};

const CODES: [&str; 10] =
    ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];

fn host() -> SoftwareHost {
    let mut h = SoftwareHost::default();
    h.seeds.insert("token:HOTP1".into(), b"12345678901234567890".to_vec());
    h
}

fn check(h: &SoftwareHost, otp: &str, first: u64, window: u32) -> Option<PluginResponse> {
    // SAFETY: the entry returns the plugin's static descriptor.
    let d = unsafe { &*countersign_token_hotp::countersign_plugin_entry() };
    let req = PluginRequest::CheckOtp {
        secret: SecretRef("token:HOTP1".into()),
        otp: otp.into(),
        first,
        window,
        params: serde_json::json!({ "digits": 6, "hash": "sha1" }),
    };
    let (status, resp, text) = h.ask(d, req);
    assert_eq!(status, Status::Ok, "{text}");
    resp
}

#[test]
fn appendix_d_vectors() {
    let h = host();
    for (counter, code) in CODES.iter().enumerate() {
        assert_eq!(check(&h, code, counter as u64, 0), Some(PluginResponse::Matched { counter: counter as u64 }));
    }
}

#[test]
fn window_and_replay_bounds() {
    let h = host();
    // Within the look-ahead window from counter 0.
    assert_eq!(check(&h, CODES[7], 0, 10), Some(PluginResponse::Matched { counter: 7 }));
    // Beyond it.
    assert_eq!(check(&h, CODES[7], 0, 5), Some(PluginResponse::NoMatch));
    // Below the first counter the host still accepts (already used): rejected.
    assert_eq!(check(&h, CODES[3], 4, 10), Some(PluginResponse::NoMatch));
    // Malformed codes never match.
    assert_eq!(check(&h, "75522", 0, 10), Some(PluginResponse::NoMatch));
    assert_eq!(check(&h, "75522x", 0, 10), Some(PluginResponse::NoMatch));
}

#[test]
fn resync_needs_two_consecutive_codes() {
    let h = host();
    // SAFETY: the entry returns the plugin's static descriptor.
    let d = unsafe { &*countersign_token_hotp::countersign_plugin_entry() };
    let resync = |a: &str, b: &str| {
        let req = PluginRequest::Resync {
            secret: SecretRef("token:HOTP1".into()),
            otp1: a.into(),
            otp2: b.into(),
            first: 0,
            window: 1000,
            params: serde_json::json!({}),
        };
        h.ask(d, req).1
    };
    assert_eq!(resync(CODES[5], CODES[6]), Some(PluginResponse::Matched { counter: 6 }));
    assert_eq!(resync(CODES[5], CODES[7]), Some(PluginResponse::NoMatch));
}
