#![allow(unsafe_code, reason = "calls the plugin's exported entry")]
//! The plugin through its exported C entry, with the software host.

use countersign_oath::software_host::SoftwareHost;
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse, SecretRef};

fn check(otp: &str, first: u64) -> PluginRequest {
    PluginRequest::CheckOtp {
        secret: SecretRef("token:T".into()),
        otp: otp.into(),
        first,
        window: 0,
        params: serde_json::json!({}),
    }
}

#[test]
fn spass_matches_only_when_nothing_follows_the_pin() {
    // SAFETY: the entry returns the plugin's static descriptor.
    let d = unsafe { &*countersign_token_spass::countersign_plugin_entry() };
    let host = SoftwareHost::default();
    assert_eq!(host.ask(d, check("", 4)).1, Some(PluginResponse::Matched { counter: 4 }));
    assert_eq!(host.ask(d, check("123456", 4)).1, Some(PluginResponse::NoMatch));
}
