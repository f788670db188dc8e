#![allow(unsafe_code, reason = "calls the plugin's exported entry")]
//! The plugin through its exported C entry, with the software host.

use countersign_oath::software_host::SoftwareHost;
use countersign_plugin_abi::abi::Status;
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
fn pw_asks_the_host_to_compare_and_matches_at_the_hosts_counter() {
    // SAFETY: the entry returns the plugin's static descriptor.
    let d = unsafe { &*countersign_token_pw::countersign_plugin_entry() };
    let mut host = SoftwareHost::default();
    host.verifiable.insert("token:T".into(), vec!["s3cret-Pass".into()]);
    assert_eq!(host.ask(d, check("s3cret-Pass", 2)).1, Some(PluginResponse::Matched { counter: 2 }));
    assert_eq!(host.ask(d, check("s3cret-pass", 2)).1, Some(PluginResponse::NoMatch));
    // A host that holds no value for the token matches nothing.
    let (status, answer, _) = SoftwareHost::default().ask(d, check("s3cret-Pass", 2));
    assert_eq!(status, Status::Ok);
    assert_eq!(answer, Some(PluginResponse::NoMatch));
}
