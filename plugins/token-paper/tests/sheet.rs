//! The paper plugin through its exported C functions, with a host that computes HMAC-SHA-1 in
//! software: the sheet is RFC 4226 Appendix D's codes, and its codes check as HOTP codes.

#![allow(unsafe_code, reason = "calls the plugin's exported entry")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_oath::software_host::SoftwareHost;
use countersign_plugin_abi::abi::Status;
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse, SecretRef};

const CODES: [&str; 10] =
    ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];

fn ask(req: PluginRequest) -> (Status, Option<PluginResponse>) {
    let mut h = SoftwareHost::default();
    h.seeds.insert("token:PPR1".into(), b"12345678901234567890".to_vec());
    // SAFETY: the entry returns the plugin's static descriptor.
    let d = unsafe { &*countersign_token_paper::countersign_plugin_entry() };
    let (status, resp, _) = h.ask(d, req);
    (status, resp)
}

fn params() -> serde_json::Value {
    serde_json::json!({ "digits": 6, "hash": "sha1" })
}

#[test]
fn the_sheet_is_the_hotp_codes_of_the_counters_listed() {
    let secret = SecretRef("token:PPR1".into());
    let (status, resp) = ask(PluginRequest::Codes { secret: secret.clone(), first: 2, count: 5, params: params() });
    assert_eq!(status, Status::Ok);
    assert_eq!(resp, Some(PluginResponse::Codes { otps: CODES[2..7].iter().map(|c| (*c).to_owned()).collect() }));
    let (status, _) = ask(PluginRequest::Codes { secret: secret.clone(), first: 0, count: 0, params: params() });
    assert_eq!(status, Status::BadRequest, "an empty sheet is a mistake");
    let check = PluginRequest::CheckOtp { secret, otp: CODES[4].into(), first: 2, window: 10, params: params() };
    assert_eq!(ask(check).1, Some(PluginResponse::Matched { counter: 4 }));
}
