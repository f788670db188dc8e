//! A token plugin for the worker tests. By OTP: `panic` panics, `segv` dies of SIGSEGV,
//! `hang` never returns, `hmac` asks the host for an HMAC and answers with its first byte;
//! anything else is no match.

#![allow(clippy::panic, reason = "panicking on request is this plugin's purpose")]

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{Hash, PluginRequest, PluginResponse};

fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    let PluginRequest::CheckOtp { secret, otp, .. } = req else {
        return Ok(PluginResponse::NoMatch);
    };
    match otp.as_str() {
        "panic" => panic!("misbehaving on purpose"),
        "segv" => {
            // A real invalid memory access, as a buggy plugin would make (raise() alone is
            // swallowed by the Rust runtime's SIGSEGV handler, which expects a re-fault).
            #[allow(unsafe_code, reason = "crashing on purpose")]
            // SAFETY: none; this write faults and the process dies of SIGSEGV, which is the test.
            unsafe {
                std::ptr::without_provenance_mut::<u8>(8).write_volatile(0);
            }
            Ok(PluginResponse::NoMatch)
        }
        "hang" => loop {
            std::thread::park();
        },
        "hmac" => {
            let macs = host.hmac(&secret, Hash::Sha1, vec![b"x".to_vec()])?;
            Ok(PluginResponse::Matched { counter: u64::from(macs[0][0]) })
        }
        _ => Ok(PluginResponse::NoMatch),
    }
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "test-misbehave",
    version: "0.0.1",
    handler: handle,
}
