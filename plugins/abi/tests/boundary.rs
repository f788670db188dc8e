//! A plugin declared with `declare_plugin!`, called through its exported C functions the way the
//! worker will call it: descriptor checks, a request that uses a host capability, and the
//! failures that must stay inside the boundary (panic, bad input, refused capability).

#![allow(unsafe_code, reason = "the test plays the host side of the FFI boundary")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::ffi::c_void;

use countersign_plugin_abi::abi::{
    ByteSlice, DescriptorError, HostVTable, OwnedBytes, PluginDescriptor, PluginKind, Status, ABI_MAJOR,
};
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{
    Envelope, Hash, HostRequest, HostResponse, PluginRequest, PluginResponse, SecretRef, PROTOCOL_VERSION,
};

/// Matches when the host's first MAC starts with the OTP's bytes; panics on OTP "panic".
fn handler(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    let PluginRequest::CheckOtp { secret, otp, first, window, .. } = req else {
        return Err(PluginError::BadRequest("only check_otp".into()));
    };
    if otp == "panic" {
        panic!("plugin bug");
    }
    let messages: Vec<Vec<u8>> = (first..=first + u64::from(window)).map(|c| c.to_be_bytes().to_vec()).collect();
    let macs = host.hmac(&secret, Hash::Sha1, messages)?;
    for (i, mac) in macs.iter().enumerate() {
        if mac[0] == otp.as_bytes()[0] {
            return Ok(PluginResponse::Matched { counter: first + i as u64 });
        }
    }
    Ok(PluginResponse::NoMatch)
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Token,
    name: "token-test",
    version: "1.2.3",
    handler: handler,
}

/// The host: MAC = the counter's last byte plus b'0', so counter 3 "matches" OTP "3...".
unsafe extern "C" fn host_call(_ctx: *mut c_void, req: ByteSlice, out: *mut OwnedBytes) -> i32 {
    let bytes = unsafe { req.as_slice() };
    let env: Envelope<HostRequest> = serde_json::from_slice(bytes).unwrap();
    let answer = match env.body {
        HostRequest::Hmac { secret, .. } if secret.0 == "forbidden" => {
            HostResponse::Refused { reason: "capability not in the manifest".into() }
        }
        HostRequest::Hmac { messages, .. } => {
            HostResponse::Hmac { macs: messages.iter().map(|m| vec![m[7] + b'0'; 20]).collect() }
        }
        HostRequest::Verify { value, .. } => HostResponse::Verified { matches: value == "right" },
        HostRequest::AesEcbDecrypt { block, .. } => {
            HostResponse::Decrypted { block: block.into_iter().rev().collect() }
        }
        HostRequest::Random { len } => HostResponse::Random { bytes: vec![7; len as usize] },
        HostRequest::Now => HostResponse::Now { unix_ms: 1 },
        HostRequest::HttpRequest { .. } | HostRequest::SmtpSend { .. } => {
            HostResponse::Refused { reason: "no transport in this test".into() }
        }
    };
    unsafe { out.write(OwnedBytes::from_vec(serde_json::to_vec(&Envelope::new(answer)).unwrap())) };
    0
}

unsafe extern "C" fn host_free(_ctx: *mut c_void, bytes: OwnedBytes) {
    drop(unsafe { bytes.into_vec() });
}

fn call(request: &[u8]) -> (Status, Vec<u8>) {
    let desc = unsafe { &*countersign_plugin_entry() };
    let host = HostVTable { ctx: std::ptr::null_mut(), call: host_call, free: host_free };
    let mut out = OwnedBytes::EMPTY;
    let status = unsafe { (desc.handle)(&host, ByteSlice::new(request), &mut out) };
    let bytes = unsafe { out.to_vec() };
    unsafe { (desc.free)(out) };
    (Status::from_raw(status), bytes)
}

fn check(otp: &str, secret: &str) -> (Status, Vec<u8>) {
    let req = Envelope::new(PluginRequest::CheckOtp {
        secret: SecretRef(secret.into()),
        otp: otp.into(),
        first: 0,
        window: 9,
        params: serde_json::json!({}),
    });
    call(&serde_json::to_vec(&req).unwrap())
}

#[test]
fn descriptor_describes_the_plugin() {
    let info = unsafe { &*countersign_plugin_entry() }.check().unwrap();
    assert_eq!(info.kind, PluginKind::Token);
    assert_eq!((info.name.as_str(), info.version.as_str()), ("token-test", "1.2.3"));
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
}

#[test]
fn wrong_magic_and_abi_major_are_refused() {
    let real = unsafe { &*countersign_plugin_entry() };
    let mut bad = PluginDescriptor { magic: *b"NOTAPLUG", ..copy(real) };
    assert_eq!(bad.check(), Err(DescriptorError::BadMagic));
    bad = PluginDescriptor { abi_major: ABI_MAJOR + 1, ..copy(real) };
    assert_eq!(bad.check(), Err(DescriptorError::AbiMajor { found: ABI_MAJOR + 1, expected: ABI_MAJOR }));
    bad = PluginDescriptor { kind: 99, ..copy(real) };
    assert_eq!(bad.check(), Err(DescriptorError::Kind(99)));
}

fn copy(d: &PluginDescriptor) -> PluginDescriptor {
    PluginDescriptor { ..*d }
}

#[test]
fn a_request_uses_the_host_capability_and_answers() {
    let (status, bytes) = check("3", "token:T1");
    assert_eq!(status, Status::Ok, "{}", String::from_utf8_lossy(&bytes));
    let env: Envelope<PluginResponse> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(env.body, PluginResponse::Matched { counter: 3 });
    let (_, bytes) = check("x", "token:T1");
    assert_eq!(serde_json::from_slice::<Envelope<PluginResponse>>(&bytes).unwrap().body, PluginResponse::NoMatch);
}

#[test]
fn a_panic_stays_inside_the_plugin() {
    let (status, _) = check("panic", "token:T1");
    assert_eq!(status, Status::Panic);
    // The plugin still answers afterwards.
    assert_eq!(check("3", "token:T1").0, Status::Ok);
}

#[test]
fn bad_requests_and_refused_capabilities_are_errors_not_answers() {
    assert_eq!(call(b"{not json").0, Status::BadRequest);
    let wrong_protocol =
        br#"{"protocol":99,"body":{"op":"check_otp","secret":"s","otp":"1","first":0,"window":1,"params":{}}}"#;
    let (status, msg) = call(wrong_protocol);
    assert_eq!(status, Status::BadRequest);
    assert!(String::from_utf8_lossy(&msg).contains("protocol 99"));
    let (status, msg) = check("3", "forbidden");
    assert_eq!(status, Status::HostError);
    assert!(String::from_utf8_lossy(&msg).contains("not in the manifest"));
}
